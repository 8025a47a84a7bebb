//! MySQL/MariaDB replication. So far: the statements for each flavor and
//! version (`sql`); the bootstrap over the routed network is to come.

pub mod sql;
