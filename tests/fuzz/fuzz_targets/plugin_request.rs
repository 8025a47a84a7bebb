//! Any body Docker (or anyone who can reach the socket) sends to the
//! plugin: each request type parses it or says why not, and a port map
//! inside it becomes exposures or an error.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use tabby::api::{self, wire};
use tabby::policy::exposures;

fn parse<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    api::parse::<T>(Ok(Bytes::copy_from_slice(data))).ok()
}

fuzz_target!(|data: &[u8]| {
    let _ = parse::<wire::CreateNetworkRequest>(data);
    let _ = parse::<wire::NetworkRequest>(data);
    let _ = parse::<wire::CreateEndpointRequest>(data);
    let _ = parse::<wire::EndpointRequest>(data);
    let _ = parse::<wire::DiscoveryRequest>(data);
    let _ = parse::<wire::RequestPoolRequest>(data);
    let _ = parse::<wire::ReleasePoolRequest>(data);
    let _ = parse::<wire::RequestAddressRequest>(data);
    let _ = parse::<wire::ReleaseAddressRequest>(data);
    if let Some(join) = parse::<wire::JoinRequest>(data) {
        for value in join.options.iter().flat_map(|o| o.values()) {
            let _ = exposures::from_portmap("ep", value);
        }
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = exposures::from_portmap("ep", &value);
    }
});
