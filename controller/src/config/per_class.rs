//! One value per traffic class, in the data plane's class order: the shape of limits,
//! ceilings and detection floors alike, in the settings and as written in the file.

use std::ops::{Index, IndexMut};

use filter_common::abi::Class;
use serde::Deserialize;

/// A value for each traffic class, indexed by [`Class`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PerClass<T>(pub [T; Class::COUNT]);

impl<T> PerClass<T> {
    /// (class, value) pairs in class order.
    pub fn iter(&self) -> impl Iterator<Item = (Class, &T)> {
        Class::ALL.into_iter().zip(self.0.iter())
    }
}

impl<T> Index<Class> for PerClass<T> {
    type Output = T;
    fn index(&self, class: Class) -> &T {
        &self.0[class as usize]
    }
}

impl<T> IndexMut<Class> for PerClass<T> {
    fn index_mut(&mut self, class: Class) -> &mut T {
        &mut self.0[class as usize]
    }
}

/// A per-class table as written in the file: one optional entry per class name; an unknown
/// class name is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerClassFile<T> {
    pub tcp_syn: Option<T>,
    pub tcp_other: Option<T>,
    pub udp: Option<T>,
    pub icmp: Option<T>,
    pub other: Option<T>,
}

impl<T> Default for PerClassFile<T> {
    fn default() -> Self {
        PerClassFile {
            tcp_syn: None,
            tcp_other: None,
            udp: None,
            icmp: None,
            other: None,
        }
    }
}

impl<T> PerClassFile<T> {
    /// The classes the file names, with their values, in class order.
    pub fn given(self) -> impl Iterator<Item = (Class, T)> {
        [
            (Class::TcpSyn, self.tcp_syn),
            (Class::TcpOther, self.tcp_other),
            (Class::Udp, self.udp),
            (Class::Icmp, self.icmp),
            (Class::Other, self.other),
        ]
        .into_iter()
        .filter_map(|(c, v)| Some((c, v?)))
    }
}
