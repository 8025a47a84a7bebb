//! The plugin's request parser, Docker's port map and the rule language:
//! arbitrary bytes, arbitrary strings and JSON that looks almost right get
//! an error, never a panic; a rule that parses prints back as itself.

use axum::body::Bytes;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tabby::api::{self, wire};
use tabby::model::Rule;
use tabby::policy::{exposures, rules};

/// Field names the wire types and records use, so generated objects often
/// get past the first missing-field check.
const FIELDS: &[&str] = &[
    "NetworkID",
    "EndpointID",
    "Options",
    "IPv4Data",
    "IPv6Data",
    "AddressSpace",
    "Pool",
    "Gateway",
    "AuxAddresses",
    "Interface",
    "Address",
    "AddressIPv6",
    "MacAddress",
    "SandboxKey",
    "DiscoveryType",
    "DiscoveryData",
    "SubPool",
    "V6",
    "PoolID",
    "Proto",
    "Port",
    "HostPort",
    "HostPortEnd",
    "HostIP",
    "IP",
    "com.docker.network.generic",
    "com.docker.network.portmap",
    "cidr",
    "pool",
    "block_prefix",
    "created",
    "host",
    "allocations",
    "affinity",
    "time",
    "endpoint",
    "id",
    "network_id",
    "ip",
    "veth",
    "state",
    "profiles",
    "labels",
    "name",
    "tags",
    "inbound",
    "outbound",
    "action",
    "protocol",
    "from",
    "to",
    "ports",
    "tag",
    "first",
    "last",
    "target",
    "host_port",
    "port",
    "hostname",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u16>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[0-9a-f]{0,70}".prop_map(Value::String),
        "(198\\.18|0\\.0|255\\.255)\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,2})?"
            .prop_map(Value::String),
        "allow|deny|tcp|udp|icmp|joined|created|1970-01-01T00:00:00Z".prop_map(Value::String),
    ]
}

/// JSON whose objects use the real field names, nested a few levels.
pub fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..8).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> bool {
    api::parse::<T>(Ok(Bytes::copy_from_slice(bytes))).is_ok()
}

/// Every request type the plugin reads; true if any accepted the body.
pub fn parse_every_request(bytes: &[u8]) -> bool {
    [
        parse::<wire::CreateNetworkRequest>(bytes),
        parse::<wire::NetworkRequest>(bytes),
        parse::<wire::CreateEndpointRequest>(bytes),
        parse::<wire::EndpointRequest>(bytes),
        parse::<wire::JoinRequest>(bytes),
        parse::<wire::DiscoveryRequest>(bytes),
        parse::<wire::RequestPoolRequest>(bytes),
        parse::<wire::ReleasePoolRequest>(bytes),
        parse::<wire::RequestAddressRequest>(bytes),
        parse::<wire::ReleaseAddressRequest>(bytes),
    ]
    .contains(&true)
}

fn words() -> impl Strategy<Value = Vec<String>> {
    let word = prop_oneof![
        3 => prop::sample::select(&["allow", "deny", "tcp", "udp", "icmp", "sctp", "from", "to", "ports", "tag", "cidr"][..]).prop_map(str::to_string),
        1 => "[0-9]{1,6}(:[0-9]{1,6})?(,[0-9]{1,6}(:[0-9]{1,6})?){0,17}",
        1 => "[a-zA-Z0-9._-]{1,70}",
        1 => "(198\\.18|10|0)\\.[0-9]{1,3}\\.[0-9]{1,3}/[0-9]{1,2}",
        1 => "\\PC{1,8}",
    ];
    prop::collection::vec(word, 0..12)
}

fn check_rule(words: &[&str]) -> Result<(), TestCaseError> {
    if let Ok(rule) = rules::parse_rule(words) {
        prop_assert!(
            rules::validate(&rule).is_ok(),
            "parsed but invalid: {rule:?}"
        );
        let text = rule.to_string();
        let again: Vec<&str> = text.split_whitespace().collect();
        prop_assert_eq!(
            rules::parse_rule(&again),
            Ok(rule),
            "{} does not round-trip",
            text
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn requests_of_arbitrary_bytes_are_errors_not_panics(bytes in any::<Vec<u8>>()) {
        parse_every_request(&bytes);
    }

    #[test]
    fn requests_of_near_json_are_errors_not_panics(value in json()) {
        parse_every_request(&serde_json::to_vec(&value).unwrap());
        let _ = exposures::from_portmap("ep", &value);
        let _ = exposures::from_portmap("ep", &Value::Array(vec![value]));
    }

    #[test]
    fn rules_of_arbitrary_text_are_errors_not_panics(text in any::<String>()) {
        check_rule(&text.split_whitespace().collect::<Vec<_>>())?;
    }

    #[test]
    fn rules_that_parse_are_valid_and_round_trip(words in words()) {
        check_rule(&words.iter().map(String::as_str).collect::<Vec<_>>())?;
    }

    /// Rules as read from etcd or `profile update` JSON: validation judges
    /// them without panicking, and a valid one prints as parsable text.
    #[test]
    fn rules_from_json_are_judged_not_panicked_on(value in json()) {
        if let Ok(rule) = serde_json::from_value::<Rule>(value) {
            if rules::validate(&rule).is_ok() {
                let text = rule.to_string();
                let words: Vec<&str> = text.split_whitespace().collect();
                prop_assert!(rules::parse_rule(&words).is_ok(), "valid rule {text:?} does not parse");
            }
        }
    }
}
