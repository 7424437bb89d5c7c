//! The human-readable plan of a manifest.

use std::fmt::Write;

use uc_types::{Manifest, Role};

pub fn render(m: &Manifest) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_plan(&mut out, m);
    out
}

fn join<T: AsRef<str>>(items: &[T]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn write_plan(out: &mut String, m: &Manifest) -> std::fmt::Result {
    writeln!(
        out,
        "cluster {} (schemaVersion {})",
        m.cluster.name, m.schema_version
    )?;
    writeln!(out, "management network {}", m.networks.management.cidr)?;

    writeln!(out, "\nnodes ({}):", m.nodes.len())?;
    for (name, node) in &m.nodes {
        let roles: Vec<&str> = node.roles.iter().map(|r| Role::as_str(*r)).collect();
        let address = node
            .primary_address()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let install = match &node.install {
            Some(i) => match (&i.layout, &i.disk) {
                (Some(layout), Some(disk)) => format!("install {layout} on {disk}"),
                _ => "install custom disko".to_owned(),
            },
            None => "no install plan".to_owned(),
        };
        writeln!(
            out,
            "  {name:<12} {address:<16} roles: {}; {install}",
            join(&roles)
        )?;
        writeln!(out, "  {:<12} daemons: {}", "", join(&node.daemons.names()))?;
    }

    writeln!(
        out,
        "\nstore: {} member(s), token {}",
        m.store.members.len(),
        m.store.cluster_token
    )?;
    for member in &m.store.members {
        writeln!(
            out,
            "  {:<12} client {}  peer {}",
            member.name, member.client_url, member.peer_url
        )?;
    }

    writeln!(out, "\nservices ({}):", m.services.len())?;
    for (name, svc) in &m.services {
        let ports: Vec<String> = svc
            .ports
            .iter()
            .map(|(n, p)| format!("{n}={}/{:?}", p.port, p.protocol).to_lowercase())
            .collect();
        writeln!(
            out,
            "  {name:<12} {} replica(s) on {} eligible: {}; ports {}",
            svc.replicas,
            svc.eligible_nodes.len(),
            join(&svc.eligible_nodes),
            join(&ports)
        )?;
        if let Some(dns) = &svc.dns {
            writeln!(out, "  {:<12} dns {}", "", dns.fqdn)?;
        }
        if !svc.listeners.is_empty() {
            writeln!(
                out,
                "  {:<12} behind listener(s) {}",
                "",
                join(&svc.listeners)
            )?;
        }
    }

    writeln!(
        out,
        "\ndns on {} (port {}):",
        join(&m.dns.servers),
        m.dns.port
    )?;
    for (zone, z) in &m.dns.zones {
        writeln!(
            out,
            "  zone {zone}: {} record(s), {} PTR pattern(s)",
            z.records.len(),
            z.ptr_patterns.len()
        )?;
        for r in &z.records {
            let target = match &r.service {
                Some(service) => format!("instances of {service}"),
                None => r.values.join(" "),
            };
            writeln!(
                out,
                "    {:<10} {:>5} {:<5} {target}",
                r.name,
                r.ttl,
                format!("{:?}", r.kind).to_uppercase()
            )?;
        }
    }

    writeln!(out, "\nload balancers on {}:", join(&m.lb.nodes))?;
    for (name, l) in &m.lb.listeners {
        let mut backends: Vec<String> = l.backends.endpoints.clone();
        if let Some(service) = &l.backends.service {
            backends.insert(
                0,
                format!(
                    "service {service}:{}",
                    l.backends.service_port.as_deref().unwrap_or("?")
                ),
            );
        }
        writeln!(
            out,
            "  {name:<12} {:?} :{} on {} -> {}",
            l.protocol,
            l.port,
            join(&l.nodes),
            join(&backends)
        )?;
    }

    writeln!(
        out,
        "\nrollout: {} wave(s), health gate {}s, auto-revert {}",
        m.rollout.waves.len(),
        m.rollout.health_gate_timeout_seconds,
        if m.rollout.auto_revert { "on" } else { "off" }
    )?;
    for (i, wave) in m.rollout.waves.iter().enumerate() {
        writeln!(out, "  wave {}: {}", i + 1, join(wave))?;
    }
    Ok(())
}
