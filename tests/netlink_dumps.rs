//! The agent's netlink socket is shared by every task, and the kernel
//! refuses a second dump on a socket while one runs (EBUSY): a Join that
//! listed links during a resync failed so ("cannot list links: Device or
//! resource busy", CI of 766f519). Many concurrent dumps, large enough to
//! span several replies, in a scratch network namespace, must all succeed.

use std::process::Command;

use tabby::dataplane::netlink::Netlink;

#[test]
fn concurrent_dumps_on_one_socket_all_succeed() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root (a network namespace)");
        return;
    }
    let failures = std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
        // Enough links that one dump takes several reads.
        let batch: String = (0..150)
            .map(|i| format!("link add da{i} type veth peer name db{i}\n"))
            .collect();
        let path = std::env::temp_dir().join(format!("tabby-dumps-{}.batch", std::process::id()));
        std::fs::write(&path, batch).unwrap();
        let made = Command::new("ip")
            .arg("-batch")
            .arg(&path)
            .status()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(made.success(), "ip -batch");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let netlink = Netlink::connect().unwrap();
            let calls = (0..40).map(|i| {
                let netlink = netlink.clone();
                async move {
                    match i % 3 {
                        0 => netlink.links().await.map(|l| l.len()),
                        1 => netlink.tabby_routes().await.map(|r| r.len()),
                        _ => netlink.host_address().await.map(|_| 0),
                    }
                }
            });
            futures::future::join_all(calls)
                .await
                .into_iter()
                .filter_map(Result::err)
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        })
    })
    .join()
    .expect("scratch thread");
    assert!(failures.is_empty(), "{failures:?}");
}
