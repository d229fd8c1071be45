//! How typed values travel in JSON: modes and classes by name, prefixes as CIDR text checked
//! like the CLI checks them, durations in whole seconds. Used with `#[serde(with = ...)]`.

use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

/// A [`Mode`](filter_common::abi::Mode) by name.
pub mod mode {
    use super::*;
    use filter_common::abi::Mode;

    pub fn serialize<S: Serializer>(m: &Mode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(m.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
        let s = String::deserialize(d)?;
        crate::config::parse_mode(&s).map_err(|e| D::Error::custom(format!("{e:#}")))
    }
}

/// A shared enum ([`Named`](filter_common::abi::Named): a stage, an action, a reason) by
/// its name.
pub mod named {
    use super::*;
    use filter_common::abi::Named;

    pub fn serialize<S: Serializer, T: Named>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Named>(d: D) -> Result<T, D::Error> {
        let s = String::deserialize(d)?;
        T::from_name(&s).ok_or_else(|| D::Error::custom(format!("unknown name {s:?}")))
    }
}

/// An optional shared enum by its name.
pub mod opt_named {
    use super::*;
    use filter_common::abi::Named;

    pub fn serialize<S: Serializer, T: Named>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        serialize_name(v.map(T::name), s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Named>(d: D) -> Result<Option<T>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| {
                T::from_name(&s).ok_or_else(|| D::Error::custom(format!("unknown name {s:?}")))
            })
            .transpose()
    }
}

/// An optional value by name, given its name and its parser (shared by the modules below).
fn serialize_name<S: Serializer>(name: Option<&str>, s: S) -> Result<S::Ok, S::Error> {
    match name {
        Some(n) => s.serialize_some(n),
        None => s.serialize_none(),
    }
}

fn deserialize_name<'de, D: Deserializer<'de>, T>(
    d: D,
    parse: fn(&str) -> anyhow::Result<T>,
) -> Result<Option<T>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| parse(&s).map_err(|e| D::Error::custom(format!("{e:#}"))))
        .transpose()
}

/// An optional mode by name.
pub mod opt_mode {
    use super::*;
    use filter_common::abi::Mode;

    pub fn serialize<S: Serializer>(m: &Option<Mode>, s: S) -> Result<S::Ok, S::Error> {
        serialize_name(m.map(Mode::name), s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Mode>, D::Error> {
        deserialize_name(d, crate::config::parse_mode)
    }
}

/// An optional [`Class`](filter_common::abi::Class) by name.
pub mod opt_class {
    use super::*;
    use filter_common::abi::Class;

    pub fn serialize<S: Serializer>(c: &Option<Class>, s: S) -> Result<S::Ok, S::Error> {
        serialize_name(c.map(Class::name), s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Class>, D::Error> {
        deserialize_name(d, crate::config::parse_class)
    }
}

/// A prefix as CIDR text; host bits below the prefix are refused, as on the command line.
pub mod cidr {
    use super::*;
    use ipnet::IpNet;

    pub fn serialize<S: Serializer>(n: &IpNet, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(n)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let s = String::deserialize(d)?;
        crate::config::parse_cidr(&s).map_err(|e| D::Error::custom(format!("{e:#}")))
    }
}

/// An optional duration in whole seconds; zero is refused.
pub mod opt_secs {
    use super::*;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<u64>::deserialize(d)? {
            Some(0) => Err(D::Error::custom("TTL must be more than zero")),
            other => Ok(other.map(Duration::from_secs)),
        }
    }
}

/// An optional prefix as CIDR text, checked as [`cidr`] is.
pub mod opt_cidr {
    use super::*;
    use ipnet::IpNet;

    pub fn serialize<S: Serializer>(n: &Option<IpNet>, s: S) -> Result<S::Ok, S::Error> {
        match n {
            Some(n) => s.collect_str(n),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpNet>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| crate::config::parse_cidr(&s).map_err(|e| D::Error::custom(format!("{e:#}"))))
            .transpose()
    }
}

/// A duration in whole seconds.
pub mod secs {
    use super::*;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}
