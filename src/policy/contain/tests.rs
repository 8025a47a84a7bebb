use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::policy::rules::{default_profile, parse_rule};

/// Refuses any batch with a line naming port 9999, as iptables-restore
/// refuses a whole batch for one bad rule; remembers what it applied.
#[derive(Default)]
struct PickyFirewall {
    applied: Mutex<Option<PolicyState>>,
}

fn refused(table: &Table) -> bool {
    table.chains.iter().any(|(_, rules)| {
        rules
            .iter()
            .any(|r| crate::policy::iptables::text::rule_text(r).contains("9999"))
    })
}

fn failed() -> Error {
    Error::Failed {
        command: "iptables-restore".into(),
        stderr: "iptables-restore: too many ports specified\nError occurred at line: 3".into(),
    }
}

#[async_trait]
impl Firewall for PickyFirewall {
    async fn apply(&self, state: Arc<PolicyState>) -> Result<(), Error> {
        if refused(&state.ruleset.filter) {
            return Err(failed());
        }
        *self.applied.lock().unwrap() = Some((*state).clone());
        Ok(())
    }

    async fn apply_piece(&self, filter: &Table) -> Result<(), Error> {
        if refused(filter) {
            Err(failed())
        } else {
            Ok(())
        }
    }
}

fn ep(id: &str, ip: &str, profiles: &[&str]) -> Endpoint {
    let mut e = Endpoint::for_test(&id.repeat(12), "h1", ip);
    e.profiles = profiles.iter().map(|p| p.to_string()).collect();
    e
}

/// A filter chain in iptables' words.
fn chain(state: &PolicyState, name: &str) -> Vec<String> {
    let rules = state
        .ruleset
        .filter
        .rules(name)
        .unwrap_or_else(|| panic!("no chain {name}"));
    rules
        .iter()
        .map(crate::policy::iptables::text::rule_text)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_profile_drops_and_the_others_still_apply() {
    let a = default_profile("A");
    let mut b = default_profile("B");
    b.inbound
        .push(parse_rule(&["allow", "tcp", "to", "ports", "9999"]).unwrap());
    let endpoints = [
        ep("a", "198.18.0.2", &["A"]),
        ep("b", "198.18.0.3", &["B"]),
        ep("c", "198.18.0.4", &["A", "B"]),
    ];
    let input = PolicyInput {
        local: &endpoints,
        all: &endpoints,
        profiles: &[a.clone(), b],
        exposures: &[],
        quarantined: &[],
        vxlan_peers: None,
    };
    let fw = PickyFirewall::default();
    let (failures, _) = apply_contained(&fw, &input, &Failures::new())
        .await
        .unwrap();
    assert_eq!(failures.keys().collect::<Vec<_>>(), ["B"]);
    assert!(
        failures["B"].contains("too many ports specified"),
        "{failures:?}"
    );
    let state = fw.applied.lock().unwrap().clone().expect("applied");
    assert_eq!(chain(&state, &profile_chain("I", "B")), ["-j DROP"]);
    assert_eq!(chain(&state, &profile_chain("O", "B")), ["-j DROP"]);
    let a_rules = render_contained(&input, &Failures::new());
    assert_eq!(
        chain(&state, &profile_chain("I", "A")),
        chain(&a_rules, &profile_chain("I", "A"))
    );
    // The endpoint on A and B keeps only B: A's allow must not open it.
    let c_in = chain(&state, &format!("TABBY-TW-{}", &"c".repeat(12)));
    assert!(!c_in.iter().any(|r| r.contains("TABBY-PI-A")), "{c_in:?}");
    // B's members are out of A's tag set; A's member is in it.
    let set = &state.sets[&crate::policy::names::tag_set("A")];
    assert!(set.contains(&"198.18.0.2".parse().unwrap()));
    assert!(!set.contains(&"198.18.0.4".parse().unwrap()));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_record_fails_closed_and_a_good_batch_reports_nothing() {
    let endpoints = [ep("b", "198.18.0.3", &["B"])];
    let input = PolicyInput {
        local: &endpoints,
        all: &endpoints,
        profiles: &[default_profile("A")],
        exposures: &[],
        quarantined: &[],
        vxlan_peers: None,
    };
    let fw = PickyFirewall::default();
    assert!(
        apply_contained(&fw, &input, &Failures::new())
            .await
            .unwrap()
            .0
            .is_empty()
    );
    let invalid = Failures::from([("B".to_string(), "invalid record: x".to_string())]);
    let (failures, programmed) = apply_contained(&fw, &input, &invalid).await.unwrap();
    assert_eq!(failures, invalid);
    let state = fw.applied.lock().unwrap().clone().unwrap();
    // What the metrics say is what the firewall was given.
    let chains = state.ruleset.filter.chains.len() + state.ruleset.nat.chains.len();
    assert_eq!(programmed.chains, chains);
    assert!(programmed.rules >= chains, "{programmed:?}");
    let members: usize = state.sets.values().map(|s| s.len()).sum();
    assert_eq!(programmed.set_members, members);
    assert_eq!(chain(&state, &profile_chain("I", "B")), ["-j DROP"]);
}
