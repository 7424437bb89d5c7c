//! One record of a zone as the manifest writes it — an owner relative to the
//! apex, a type and presentation-format values — turned into DNS records.
//! Names inside values follow zone-file rules: with a trailing dot they are
//! absolute, without one they are relative to the apex, and `@` is the apex.

use hickory_server::proto::rr::rdata::{CNAME, NS, PTR};
use hickory_server::proto::rr::{Name, RData, RecordType};
use uc_types::RecordType as DeclaredType;

/// Why a value of a record could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("owner {owner:?} is not a valid name: {reason}")]
    Owner { owner: String, reason: String },
    #[error("owner {owner} is outside the zone")]
    OutsideZone { owner: String },
    #[error("value {value:?} is not valid {kind} data: {reason}")]
    Value {
        value: String,
        kind: RecordType,
        reason: String,
    },
    #[error("value {value:?}: the name {name:?} is not valid: {reason}")]
    NameInValue {
        value: String,
        name: String,
        reason: String,
    },
}

/// The wire type of a declared record type.
pub fn wire_type(kind: DeclaredType) -> RecordType {
    match kind {
        DeclaredType::A => RecordType::A,
        DeclaredType::Aaaa => RecordType::AAAA,
        DeclaredType::Cname => RecordType::CNAME,
        DeclaredType::Txt => RecordType::TXT,
        DeclaredType::Mx => RecordType::MX,
        DeclaredType::Srv => RecordType::SRV,
        DeclaredType::Ns => RecordType::NS,
        DeclaredType::Caa => RecordType::CAA,
        DeclaredType::Ptr => RecordType::PTR,
    }
}

/// The absolute owner of a record named `owner` (`@`, `www`, `_sip._tcp`, `*`)
/// in the zone at `apex`.
pub fn owner_name(owner: &str, apex: &Name) -> Result<Name, RecordError> {
    if owner == "@" {
        return Ok(apex.clone());
    }
    let name = Name::parse(owner, Some(apex)).map_err(|err| RecordError::Owner {
        owner: owner.to_owned(),
        reason: err.to_string(),
    })?;
    if !apex.zone_of(&name) {
        return Err(RecordError::OutsideZone {
            owner: name.to_string(),
        });
    }
    Ok(name)
}

/// The data of one presentation-format `value` of type `kind`, with names
/// made absolute against `apex`.
pub fn parse_value(kind: RecordType, value: &str, apex: &Name) -> Result<RData, RecordError> {
    let names_apex = matches!(
        kind,
        RecordType::CNAME | RecordType::NS | RecordType::PTR | RecordType::MX | RecordType::SRV
    );
    // hickory's lexer has no origin here: `@` is spelled out as the apex.
    let spelled;
    let text = if names_apex && value.split_whitespace().any(|token| token == "@") {
        let apex = apex.to_string();
        spelled = value
            .split_whitespace()
            .map(|token| if token == "@" { apex.as_str() } else { token })
            .collect::<Vec<_>>()
            .join(" ");
        spelled.as_str()
    } else {
        value
    };
    let data = RData::try_from_str(kind, text).map_err(|err| RecordError::Value {
        value: value.to_owned(),
        kind,
        reason: err.to_string(),
    })?;
    let absolute = |name: Name| absolute_name(name, apex, value);
    Ok(match data {
        RData::CNAME(CNAME(name)) => RData::CNAME(CNAME(absolute(name)?)),
        RData::NS(NS(name)) => RData::NS(NS(absolute(name)?)),
        RData::PTR(PTR(name)) => RData::PTR(PTR(absolute(name)?)),
        RData::MX(mut mx) => {
            mx.exchange = absolute(mx.exchange)?;
            RData::MX(mx)
        }
        RData::SRV(mut srv) => {
            srv.target = absolute(srv.target)?;
            RData::SRV(srv)
        }
        other => other,
    })
}

/// `name` as written in `value`: absolute already, or relative to `apex`.
fn absolute_name(name: Name, apex: &Name, value: &str) -> Result<Name, RecordError> {
    if name.is_fqdn() {
        return Ok(name);
    }
    name.clone()
        .append_domain(apex)
        .map_err(|err| RecordError::NameInValue {
            value: value.to_owned(),
            name: name.to_string(),
            reason: err.to_string(),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn apex() -> Name {
        Name::from_ascii("example.test.").unwrap()
    }

    #[test]
    fn owners_are_relative_to_the_apex() {
        let table = [
            ("@", "example.test."),
            ("www", "www.example.test."),
            ("_sip._tcp", "_sip._tcp.example.test."),
            ("*", "*.example.test."),
            ("a.b", "a.b.example.test."),
        ];
        for (owner, expected) in table {
            assert_eq!(owner_name(owner, &apex()).unwrap().to_string(), expected);
        }
        assert!(matches!(
            owner_name("www.other.test.", &apex()),
            Err(RecordError::OutsideZone { .. })
        ));
        assert!(owner_name("a..b", &apex()).is_err());
    }

    #[test]
    fn names_in_values_follow_zone_file_rules() {
        let table = [
            (RecordType::CNAME, "www", "www.example.test."),
            (RecordType::CNAME, "other.test.", "other.test."),
            (RecordType::CNAME, "@", "example.test."),
            (RecordType::MX, "10 mail", "10 mail.example.test."),
            (RecordType::MX, "10 @", "10 example.test."),
            (RecordType::SRV, "0 5 443 web", "0 5 443 web.example.test."),
            (RecordType::NS, "ns1.example.test.", "ns1.example.test."),
            (RecordType::PTR, "host.example.test.", "host.example.test."),
        ];
        for (kind, value, expected) in table {
            let data = parse_value(kind, value, &apex()).unwrap();
            assert_eq!(data.to_string(), expected, "{kind} {value}");
        }
    }

    #[test]
    fn other_types_parse_their_presentation_format() {
        let table = [
            (RecordType::A, "192.0.2.1", "192.0.2.1"),
            (RecordType::AAAA, "2001:db8::1", "2001:db8::1"),
            (RecordType::TXT, "\"hello world\"", "hello world"),
            (
                RecordType::CAA,
                "0 issue \"letsencrypt.org\"",
                "0 issue \"letsencrypt.org\"",
            ),
        ];
        for (kind, value, expected) in table {
            let data = parse_value(kind, value, &apex()).unwrap();
            assert_eq!(data.to_string(), expected, "{kind} {value}");
        }
    }

    #[test]
    fn bad_values_are_errors_that_name_the_value() {
        for (kind, value) in [
            (RecordType::A, "not-an-address"),
            (RecordType::A, ""),
            (RecordType::AAAA, "192.0.2.1"),
            (RecordType::MX, "mail"),
            (RecordType::SRV, "1 2 x y"),
        ] {
            let err = parse_value(kind, value, &apex()).unwrap_err();
            assert!(err.to_string().contains(&format!("{value:?}")), "{err}");
        }
    }
}
