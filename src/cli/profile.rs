//! `tabby profile …` and `tabby container C profile …`, in calicoctl's
//! word order (`tabby profile P rule add inbound allow tcp to ports 3306`).

use std::io::Read;

use anyhow::{Result, bail};
use serde_json::json;

use super::output::print;
use super::{EtcdArgs, Format};
use crate::model::Rule;
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

pub async fn run(args: Vec<String>, etcd: &EtcdArgs, format: Format) -> Result<()> {
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
        ["show"] | ["show", "--detailed"] => {
            let detailed = words.len() == 2;
            let mut all = store.profiles().await?;
            all.sort_by(|a, b| a.name.cmp(&b.name));
            let rows = all
                .iter()
                .map(|p| {
                    let mut row = vec![p.name.clone()];
                    if detailed {
                        row.push(p.tags.iter().cloned().collect::<Vec<_>>().join(","));
                        row.push(p.inbound.len().to_string());
                        row.push(p.outbound.len().to_string());
                    }
                    row
                })
                .collect();
            let headers: &[&str] = if detailed {
                &["NAME", "TAGS", "INBOUND RULES", "OUTBOUND RULES"]
            } else {
                &["NAME"]
            };
            print(format, headers, rows, &all);
        }
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
