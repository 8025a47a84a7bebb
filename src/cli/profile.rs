//! `tabby profile …` and `tabby container C profile …`, in calicoctl's
//! word order (`tabby profile P rule add inbound allow tcp to ports 3306`).

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Result, bail};
use serde_json::json;

use super::output::print;
use super::{EtcdArgs, Format};
use crate::model::Rule;
use crate::policy::contain::Failures;
use crate::policy::profiles::{self, Direction};
use crate::policy::rules::parse_rule;

const PROFILE_USAGE: &str = "usage: tabby profile add|remove P | show [--detailed] | P tag add|remove T | \
P rule add inbound|outbound [--at N] RULE | P rule show | P rule remove inbound|outbound N | P rule json | P rule update < FILE";

fn direction(word: Option<&String>) -> Result<Direction> {
    match word.map(String::as_str) {
        Some("inbound") => Ok(Direction::Inbound),
        Some("outbound") => Ok(Direction::Outbound),
        other => bail!("expected inbound or outbound, got {other:?}"),
    }
}

/// Takes `-o`/`--output` out of the words: clap's trailing word list
/// swallows the global option when it comes after them
/// (`tabby profile show -o json`), as it may for every other command.
fn take_output(args: Vec<String>, mut format: Format) -> Result<(Vec<String>, Format)> {
    let mut words = Vec::new();
    let mut it = args.into_iter();
    while let Some(word) = it.next() {
        let value = match word.as_str() {
            "-o" | "--output" => Some(
                it.next()
                    .ok_or_else(|| anyhow::anyhow!("{word} needs a value"))?,
            ),
            other => other.strip_prefix("--output=").map(str::to_string),
        };
        match value {
            Some(v) => {
                format = <Format as clap::ValueEnum>::from_str(&v, false)
                    .map_err(|_| anyhow::anyhow!("--output is table or json, not {v:?}"))?
            }
            None => words.push(word),
        }
    }
    Ok((words, format))
}

pub async fn run(args: Vec<String>, etcd: &EtcdArgs, format: Format) -> Result<()> {
    let (args, format) = take_output(args, format)?;
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let store = etcd.connect().await?;
    match words.as_slice() {
        ["add", name] => {
            profiles::add(&store, name).await?;
            println!("Created profile {name}");
        }
        ["remove", name] => {
            profiles::remove(&store, name).await?;
            println!("Removed profile {name}");
        }
        ["show"] | ["show", "--detailed"] => show(&store, words.len() == 2, format).await?,
        [name, "tag", op @ ("add" | "remove"), tag] => {
            profiles::set_tag(&store, name, tag, *op == "add").await?;
            println!(
                "Tag {tag} {} profile {name}",
                if *op == "add" {
                    "added to"
                } else {
                    "removed from"
                }
            );
        }
        [name, "rule", "show"] => {
            let profile = store
                .profile(name)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no profile {name}"))?
                .value;
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&profile)?);
            } else {
                println!("Inbound rules:");
                for (i, rule) in profile.inbound.iter().enumerate() {
                    println!("  {:2} {rule}", i + 1);
                }
                println!("Outbound rules:");
                for (i, rule) in profile.outbound.iter().enumerate() {
                    println!("  {:2} {rule}", i + 1);
                }
            }
        }
        [name, "rule", "add", dir, rest @ ..] => {
            let direction = direction(Some(&dir.to_string()))?;
            let (at, rule_words) = match rest {
                ["--at", n, rule @ ..] => (
                    Some(
                        n.parse::<usize>()
                            .map_err(|_| anyhow::anyhow!("--at needs a number"))?,
                    ),
                    rule,
                ),
                rule => (None, rule),
            };
            let rule = parse_rule(rule_words)?;
            profiles::add_rule(&store, name, direction, at, rule.clone()).await?;
            let known: std::collections::BTreeSet<String> = store
                .profiles()
                .await?
                .into_iter()
                .flat_map(|p| p.tags)
                .collect();
            for tag in rule.from.tag.iter().chain(&rule.to.tag) {
                if !known.contains(tag) {
                    eprintln!(
                        "Warning: no profile carries tag {tag} yet; the rule matches nothing until one does"
                    );
                }
            }
            println!("Added {} rule to {name}: {rule}", direction.name());
        }
        [name, "rule", "remove", dir, n] => {
            let direction = direction(Some(&dir.to_string()))?;
            let index = n
                .parse()
                .map_err(|_| anyhow::anyhow!("rule number expected, got {n:?}"))?;
            profiles::remove_rule(&store, name, direction, index).await?;
            println!("Removed {} rule {index} of {name}", direction.name());
        }
        [name, "rule", "json"] => {
            let profile = store
                .profile(name)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no profile {name}"))?
                .value;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({"inbound": profile.inbound, "outbound": profile.outbound})
                )?
            );
        }
        [name, "rule", "update"] => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Rules {
                inbound: Vec<Rule>,
                outbound: Vec<Rule>,
            }
            let rules: Rules = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("invalid rules JSON: {e}"))?;
            profiles::update(&store, name, |p| {
                p.inbound = rules.inbound.clone();
                p.outbound = rules.outbound.clone();
                Ok(())
            })
            .await?;
            println!("Replaced the rules of {name}");
        }
        _ => bail!("{PROFILE_USAGE}"),
    }
    Ok(())
}

/// Where and why a profile is not applied (fails closed), or "ok".
fn status_of(name: &str, failures: &BTreeMap<String, Failures>) -> BTreeMap<String, String> {
    failures
        .iter()
        .filter_map(|(host, f)| f.get(name).map(|r| (host.clone(), r.clone())))
        .collect()
}

async fn show(store: &crate::store::Store, detailed: bool, format: Format) -> Result<()> {
    let (mut all, invalid) = store.profiles_checked().await?;
    let failures = store.policy_statuses().await?;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let status = |name: &str| {
        let failed = status_of(name, &failures);
        if failed.is_empty() {
            return "ok".to_string();
        }
        let hosts: Vec<String> = failed.iter().map(|(h, r)| format!("{h}: {r}")).collect();
        format!("FAILED (dropping) on {}", hosts.join("; "))
    };
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for p in &all {
        let mut row = vec![p.name.clone()];
        if detailed {
            row.push(p.tags.iter().cloned().collect::<Vec<_>>().join(","));
            row.push(p.inbound.len().to_string());
            row.push(p.outbound.len().to_string());
        }
        row.push(status(&p.name));
        rows.push(row);
        let mut value = serde_json::to_value(p)?;
        value["failures"] = json!(status_of(&p.name, &failures));
        out.push(value);
    }
    // A record that cannot be read is listed too: its endpoints drop.
    for (name, reason) in &invalid {
        let mut row = vec![name.clone()];
        if detailed {
            row.extend(["-".to_string(), "-".to_string(), "-".to_string()]);
        }
        row.push(format!("FAILED (dropping): {reason}"));
        rows.push(row);
        out.push(json!({"name": name, "invalid": reason, "failures": status_of(name, &failures)}));
    }
    let headers: &[&str] = if detailed {
        &["NAME", "TAGS", "INBOUND RULES", "OUTBOUND RULES", "STATUS"]
    } else {
        &["NAME", "STATUS"]
    };
    print(format, headers, rows, &out);
    Ok(())
}

pub async fn container(args: Vec<String>, etcd: &EtcdArgs) -> Result<()> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let store = etcd.connect().await?;
    let [
        container,
        "profile",
        op @ ("append" | "remove" | "set"),
        names @ ..,
    ] = words.as_slice()
    else {
        bail!("usage: tabby container C profile append|remove|set P...");
    };
    if names.is_empty() && *op != "set" {
        bail!("name at least one profile");
    }
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let now = profiles::set_container_profiles(&store, container, |current| match *op {
        "append" => {
            for n in &names {
                if !current.contains(n) {
                    current.push(n.clone());
                }
            }
        }
        "remove" => current.retain(|p| !names.contains(p)),
        _ => *current = names.clone(),
    })
    .await?;
    println!("Profiles of {container}: {}", now.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_option_is_taken_wherever_it_comes() {
        let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let (args, format) = take_output(words("show -o json --detailed"), Format::Table).unwrap();
        assert_eq!((args, format), (words("show --detailed"), Format::Json));
        let (args, format) =
            take_output(words("A rule show --output=json"), Format::Table).unwrap();
        assert_eq!((args, format), (words("A rule show"), Format::Json));
        assert!(take_output(words("show -o"), Format::Table).is_err());
        assert!(take_output(words("show -o yaml"), Format::Table).is_err());
    }
}
