//! Which links tabby made. A name prefix proves nothing (a user's
//! `tabby0` bridge starts with it too): tabby's veths carry the alias
//! `tabby:<endpoint id>`, set when they are created, and their name is the
//! one tabby derives from that ID.
//!
//! Veths made before aliases existed have none. Such a veth is adopted
//! (given its alias) only when its name is that of an endpoint this host
//! records; any other alias-less link is left alone, whatever its name.

use std::collections::HashMap;

use tracing::info;

use super::netlink::LinkSummary;
use super::{Dataplane, Error, host_veth_name, peer_veth_name};

const ALIAS_PREFIX: &str = "tabby:";

/// The alias that marks both ends of an endpoint's veth pair.
pub fn owner_alias(endpoint_id: &str) -> String {
    format!("{ALIAS_PREFIX}{endpoint_id}")
}

/// The endpoint a link's alias names, if the link is a veth whose alias
/// and name agree.
pub fn proven_owner(link: &LinkSummary) -> Option<&str> {
    let id = link.alias.as_deref()?.strip_prefix(ALIAS_PREFIX)?;
    let well_formed = !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit());
    let named = well_formed && (link.name == host_veth_name(id) || link.name == peer_veth_name(id));
    (link.veth && named).then_some(id)
}

/// Whether tabby may take `link`: proven by its alias, or a pre-alias veth
/// whose name is a key of `recorded` (link names of this host's endpoints).
pub fn is_tabby_link(link: &LinkSummary, recorded: &HashMap<String, String>) -> bool {
    proven_owner(link).is_some()
        || (link.veth && link.alias.is_none() && recorded.contains_key(&link.name))
}

/// Both link names of each endpoint, to the endpoint's ID: what
/// `tabby_links` adopts.
pub fn recorded_links<'a>(ids: impl IntoIterator<Item = &'a str>) -> HashMap<String, String> {
    ids.into_iter()
        .flat_map(|id| {
            [
                (host_veth_name(id), id.to_string()),
                (peer_veth_name(id), id.to_string()),
            ]
        })
        .collect()
}

impl Dataplane {
    /// Host links tabby made (see the module comment). With `adopt`,
    /// pre-alias veths of recorded endpoints get their alias now, so that
    /// later passes can prove them without the record.
    pub async fn tabby_links(
        &self,
        recorded: &HashMap<String, String>,
        adopt: bool,
    ) -> Result<Vec<String>, Error> {
        let mut owned = Vec::new();
        for link in self.netlink.link_summaries().await? {
            if !is_tabby_link(&link, recorded) {
                continue;
            }
            if let (true, None, Some(id)) = (adopt, &link.alias, recorded.get(&link.name)) {
                self.netlink.set_alias(&link.name, &owner_alias(id)).await?;
                info!(veth = %link.name, "adopted a veth made before ownership aliases");
            }
            owned.push(link.name);
        }
        Ok(owned)
    }

    /// Deletes `name` if it is a veth tabby may remove: proven by its
    /// alias, or alias-less (made before aliases), which callers only ask
    /// for a name taken from an endpoint record. Anything else of that name
    /// is refused, never deleted.
    pub(super) async fn delete_own_link(&self, name: &str) -> Result<bool, Error> {
        let Some(link) = self.netlink.link_summary(name).await? else {
            return Ok(false);
        };
        if !(link.veth && (link.alias.is_none() || proven_owner(&link).is_some())) {
            return Err(Error::Foreign(name.to_string()));
        }
        self.netlink.delete_link(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, veth: bool, alias: Option<&str>) -> LinkSummary {
        LinkSummary {
            name: name.into(),
            index: 1,
            veth,
            alias: alias.map(str::to_string),
        }
    }

    #[test]
    fn only_aliased_veths_or_recorded_names_are_tabbys() {
        let id = "0123456789abcdef0123";
        let host = host_veth_name(id);
        let recorded = recorded_links(["fedcba9876543210"]);
        let aliased = link(&host, true, Some(&owner_alias(id)));
        assert_eq!(proven_owner(&aliased), Some(id));
        assert!(is_tabby_link(&aliased, &HashMap::new()));
        assert!(is_tabby_link(
            &link(&peer_veth_name(id), true, Some(&owner_alias(id))),
            &HashMap::new()
        ));
        // A name prefix, a bridge, a copied alias on another name, a
        // non-hex ID: none of them is proof.
        for foreign in [
            link("tabbyuser0", false, None),
            link("tabbyx", true, None),
            link(&host, false, Some(&owner_alias(id))),
            link("tabbyother", true, Some(&owner_alias(id))),
            link("tabbyé", true, Some("tabby:é")),
            link(&host, true, Some("someone else")),
        ] {
            assert!(!is_tabby_link(&foreign, &recorded), "{foreign:?}");
        }
        // Pre-alias veths: only under a recorded endpoint's name.
        assert!(is_tabby_link(
            &link(&host_veth_name("fedcba9876543210"), true, None),
            &recorded
        ));
        assert!(!is_tabby_link(
            &link(&host_veth_name("fedcba9876543210"), false, None),
            &recorded
        ));
        assert!(!is_tabby_link(&link(&host, true, None), &recorded));
    }
}
