//! The local MariaDB image (`scripts/images`): initialised with
//! MYSQL_ROOT_PASSWORD, extra arguments reach mariadbd, and root can log in
//! over a tabby network from another container.

mod support;

use std::time::Duration;

use support::{Lab, eventually};

#[test]
fn mariadb_image_serves_root_over_tabby_with_the_given_options() {
    let lab = Lab::up(1);
    lab.import_image("mariadb", &["h1"]);
    lab.sh("h1", "tabby network create db --subnet 198.18.64.0/20");
    lab.sh(
        "h1",
        "docker run -d --name m1 --net db -e MYSQL_ROOT_PASSWORD=s3cr3t-pw tabby/mariadb --server-id=7 --log-bin",
    );
    let ip = lab.container_ip("h1", "m1");
    let query = |password: &str| {
        lab.run(
            "h1",
            &[
                "docker",
                "run",
                "--rm",
                "--net",
                "db",
                "-e",
                &format!("MYSQL_PWD={password}"),
                "tabby/mariadb",
                "mariadb",
                "-h",
                &ip,
                "-uroot",
                "-N",
                "-e",
                "select @@server_id, @@log_bin",
            ],
        )
    };
    let out = eventually(
        Duration::from_secs(60),
        "MariaDB to accept connections",
        || {
            let out = query("s3cr3t-pw");
            out.status.success().then_some(out)
        },
    );
    let row = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["7", "1"],
        "{row}"
    );
    assert!(
        !query("wrong").status.success(),
        "a wrong password is refused"
    );
    // The password is not on any command line inside the container.
    let ps = lab.sh(
        "h1",
        "docker exec m1 sh -c 'cat /proc/[0-9]*/cmdline | tr \"\\0\" \" \"'",
    );
    assert!(!ps.contains("s3cr3t-pw"), "{ps}");
}
