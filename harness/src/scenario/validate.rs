//! Topology checks that need the whole picture, and address assignment.
//!
//! Addresses, per network (the format's "Addresses" paragraph):
//! 1. listed addresses (hosts' `address`/`addresses`, NAT pools) are reserved first;
//! 2. the NAT or firewall whose inside the network is takes the first free usable address
//!    (`.1` unless a host listed it);
//! 3. hosts without an address take the next free ones, in file order;
//! 4. then, on their outside network, firewalls (one address each) and NATs that list no
//!    `addresses` (a pool of one) take the next free ones, in file order.

use super::model::{Gateway, Spec};
use super::parse::Parser;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// The first free usable address of network `net` not in `used`.
fn next_free(spec: &Spec, net: &str, used: &HashSet<IpAddr>) -> Option<IpAddr> {
    let n = spec.topology.network(net)?;
    let last = n.prefix.last_host_index();
    let first = if n.prefix.addr().is_ipv4() && n.prefix.len() >= 31 {
        0
    } else {
        1
    };
    // Bounded: no more than `used.len() + 1` candidates can be taken.
    let mut i = first;
    while i <= last {
        let a = n.prefix.nth(i)?;
        if !used.contains(&a) {
            return Some(a);
        }
        i += 1;
        if i > first + used.len() as u128 + 1 {
            break;
        }
    }
    None
}

pub(crate) fn topology(p: &mut Parser, spec: &mut Spec) {
    let t = &spec.topology;
    // Devices: (name, inside, outside).
    let devices: Vec<(String, String, String)> = t
        .nats
        .iter()
        .map(|n| (n.name.clone(), n.inside.clone(), n.outside.clone()))
        .chain(
            t.firewalls
                .iter()
                .map(|f| (f.name.clone(), f.inside.clone(), f.outside.clone())),
        )
        .collect();
    let mut inside_of: HashMap<&str, &str> = HashMap::new();
    let mut bad_devices: HashSet<&str> = HashSet::new();
    for (name, inside, outside) in &devices {
        let (ipos, opos) = p.device_pos.get(name).copied().unwrap_or_default();
        if inside == outside {
            p.e.help(
                opos,
                format!("`{name}` has `{inside}` as both its inside and its outside"),
                "the outside must be another network",
            );
            bad_devices.insert(name);
        }
        if let Some(other) = inside_of.get(inside.as_str()) {
            p.e.help(
                ipos,
                format!("network `{inside}` is already the inside of `{other}`"),
                "a network has at most one NAT or firewall on its inside; give this one its own network",
            );
            bad_devices.insert(name);
        } else {
            inside_of.insert(inside, name);
        }
    }
    // Nesting loops: follow inside -> outside from each network.
    let next: HashMap<&str, (&str, &str)> = devices
        .iter()
        .filter(|d| !bad_devices.contains(d.0.as_str()))
        .map(|(n, i, o)| (i.as_str(), (o.as_str(), n.as_str())))
        .collect();
    let mut reported: HashSet<&str> = HashSet::new();
    for (name, inside, _) in &devices {
        let mut seen = vec![inside.as_str()];
        let mut cur = inside.as_str();
        while let Some((out, _dev)) = next.get(cur) {
            if seen.contains(out) {
                if seen.iter().all(|s| !reported.contains(s)) {
                    let (_, opos) = p.device_pos.get(name).copied().unwrap_or_default();
                    let mut path: Vec<&str> = seen.clone();
                    path.push(out);
                    p.e.help(
                        opos,
                        format!("NATs/firewalls nest in a loop: {}", path.join(" -> ")),
                        "each device's outside must lead towards a network that is nobody's inside",
                    );
                    reported.extend(seen.iter().copied());
                }
                break;
            }
            seen.push(out);
            cur = out;
        }
    }

    // ===== addresses =====
    let mut used: HashSet<IpAddr> = p.addr_uses.iter().map(|u| u.addr).collect();
    let mut gateways: HashMap<String, Gateway> = HashMap::new();
    let full = |p: &mut Parser, net: &str, pos, who: &str| {
        p.e.help(
            pos,
            format!("network `{net}` has no free address left for {who}"),
            "use a larger prefix or fewer hosts",
        );
    };
    for (name, inside, _) in &devices {
        if gateways.contains_key(inside) || bad_devices.contains(name.as_str()) {
            continue;
        }
        match next_free(spec, inside, &used) {
            Some(a) => {
                used.insert(a);
                gateways.insert(
                    inside.clone(),
                    Gateway {
                        device: name.clone(),
                        address: a,
                    },
                );
            }
            None => {
                let (ipos, _) = p.device_pos.get(name).copied().unwrap_or_default();
                full(p, inside, ipos, &format!("`{name}`"));
            }
        }
    }
    for i in p.auto_hosts.clone() {
        let (net, pos, name) = {
            let h = &spec.topology.hosts[i];
            (h.network.clone(), h.pos, h.name.clone())
        };
        match next_free(spec, &net, &used) {
            Some(a) => {
                used.insert(a);
                spec.topology.hosts[i].addresses.push(a);
            }
            None => full(p, &net, pos, &format!("host `{name}`")),
        }
    }
    for i in 0..spec.topology.firewalls.len() {
        let (net, name, pos) = {
            let f = &spec.topology.firewalls[i];
            (f.outside.clone(), f.name.clone(), f.pos)
        };
        match next_free(spec, &net, &used) {
            Some(a) => {
                used.insert(a);
                spec.topology.firewalls[i].outside_address = a;
            }
            None => full(p, &net, pos, &format!("firewall `{name}`")),
        }
    }
    for i in p.auto_pools.clone() {
        let (net, name, pos) = {
            let n = &spec.topology.nats[i];
            (n.outside.clone(), n.name.clone(), n.pos)
        };
        match next_free(spec, &net, &used) {
            Some(a) => {
                used.insert(a);
                spec.topology.nats[i].addresses.push(a);
            }
            None => full(p, &net, pos, &format!("NAT `{name}`")),
        }
    }
    let topo = &mut spec.topology;
    for n in &mut topo.networks {
        n.gateway = gateways.get(&n.name).cloned();
    }
    for n in &mut topo.nats {
        if let Some(g) = gateways.get(&n.inside).filter(|g| g.device == n.name) {
            n.inside_address = g.address;
        }
    }
    for f in &mut topo.firewalls {
        if let Some(g) = gateways.get(&f.inside).filter(|g| g.device == f.name) {
            f.inside_address = g.address;
        }
    }
    for h in &mut topo.hosts {
        h.gateway = gateways.get(&h.network).map(|g| g.address);
    }
}
