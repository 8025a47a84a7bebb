//! The IPAM half of dual-stack: Docker's IPv6 RequestPool and
//! RequestAddress calls are answered from IPv6 pools, /128 by /128, with
//! the same handles and refusals as IPv4.

use std::collections::HashMap;

use super::host;
use crate::dataplane::GATEWAY6;

fn gateway_request() -> HashMap<String, String> {
    HashMap::from([(
        "RequestAddressType".to_string(),
        "com.docker.network.gateway".to_string(),
    )])
}

#[tokio::test]
async fn ipv6_pools_answer_ipv6_requests_only() {
    let h = host();
    let err = h.driver.request_pool("", "", true).await.unwrap_err();
    assert!(err.to_string().contains("no IPv6 address pool"), "{err}");
    // A subnet of the other family is refused both ways.
    let err = h.driver.request_pool("2001:2:0:1000::/64", "", false).await;
    assert!(err.unwrap_err().to_string().contains("not an IPv4 subnet"));
    let err = h.driver.request_pool("198.18.64.0/24", "", true).await;
    assert!(err.unwrap_err().to_string().contains("not an IPv6 subnet"));

    let grant = h
        .driver
        .request_pool("2001:2:0:1000::/64", "", true)
        .await
        .unwrap();
    assert_eq!(grant.pool_id, "2001:2:0:1000::/64");
    assert_eq!(
        grant.data["com.docker.network.gateway"],
        format!("{GATEWAY6}/128")
    );
    let pool = h.driver.ipam.pools().await.unwrap();
    assert_eq!(pool.len(), 1);
    assert_eq!(pool[0].block_prefix, 122, "Calico's IPv6 block size");
    // Without --subnet: the first IPv6 pool, reported as ::/0.
    let any = h.driver.request_pool("", "", true).await.unwrap();
    assert_eq!(
        (any.pool_id.as_str(), any.pool.as_str()),
        ("2001:2:0:1000::/64", "::/0")
    );
    // No IPv4 pool was made or is taken for the IPv4 default.
    assert!(h.driver.request_pool("", "", false).await.is_err());
}

#[tokio::test]
async fn ipv6_addresses_are_slash_128s_held_and_refused_like_ipv4() {
    let h = host();
    let grant = h
        .driver
        .request_pool("2001:2:0:1000::/64", "", true)
        .await
        .unwrap();
    let gateway = h
        .driver
        .request_address(&grant.pool_id, "", &gateway_request())
        .await
        .unwrap();
    assert_eq!(gateway, "fe80::ecee:eeff:feee:eeee/128");
    let first = h
        .driver
        .request_address(&grant.pool_id, "", &HashMap::new())
        .await
        .unwrap();
    assert!(first.ends_with("/128"), "{first}");
    let ip: std::net::IpAddr = first.split('/').next().unwrap().parse().unwrap();
    assert!(grant.pool_id.parse::<ipnet::IpNet>().unwrap().contains(&ip));

    // --ip6: honoured when free, refused naming the holder when taken.
    let wanted = "2001:2:0:1000::77";
    let got = h
        .driver
        .request_address(&grant.pool_id, wanted, &HashMap::new())
        .await
        .unwrap();
    assert_eq!(got, format!("{wanted}/128"));
    let err = h
        .driver
        .request_address(&grant.pool_id, wanted, &HashMap::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already in use by") && err.contains("on host h1"),
        "{err}"
    );
    let err = h
        .driver
        .request_address(&grant.pool_id, "2001:2:0:2000::1", &HashMap::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not in pool"), "{err}");

    // Released, the address is free again; releasing the gateway is a no-op.
    h.driver
        .release_address(&grant.pool_id, wanted)
        .await
        .unwrap();
    assert!(
        h.driver
            .ipam
            .holder(wanted.parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    h.driver
        .release_address(&grant.pool_id, &gateway)
        .await
        .unwrap();
    assert!(h.driver.ipam.holder(ip).await.unwrap().is_some());
}

#[tokio::test]
async fn a_dual_stack_network_is_refused_where_the_firewall_cannot_police_ipv6() {
    let h = host();
    let v4 = h
        .driver
        .request_pool("198.18.64.0/24", "", false)
        .await
        .unwrap();
    let v6 = h
        .driver
        .request_pool("2001:2:0:1000::/64", "", true)
        .await
        .unwrap();
    let before = h.driver.store.networks().await.unwrap();
    let ipv6 = crate::driver::Ipv6Data {
        pool: &v6.pool,
        gateway: "fe80::ecee:eeff:feee:eeee/128",
    };
    let err = h
        .driver
        .create_network(
            &"6".repeat(64),
            &v4.pool,
            "169.254.1.1/32",
            Some(ipv6),
            Default::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nftables firewall backend"), "{err}");
    assert_eq!(h.driver.store.networks().await.unwrap(), before);
}
