//! Compact storage for lookups held across a whole tenant: texts that repeat across rows
//! (dates, product types, method lists) are stored once and referred to by a 4-byte handle, and
//! users are keyed by one shared index instead of a string per report.

use std::collections::HashMap;
use std::num::NonZeroU32;

/// A handle to a text stored in [`Texts`]; `Option<Text>` is 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Text(NonZeroU32);

/// Texts stored once each.
#[derive(Default)]
pub struct Texts {
    list: Vec<Box<str>>,
    index: HashMap<Box<str>, Text>,
}

impl Texts {
    pub fn intern(&mut self, text: &str) -> Text {
        if let Some(&handle) = self.index.get(text) {
            return handle;
        }
        self.list.push(text.into());
        let handle = Text(NonZeroU32::new(self.list.len() as u32).expect("starts at 1"));
        self.index.insert(text.into(), handle);
        handle
    }

    pub fn get(&self, handle: Text) -> &str {
        &self.list[handle.0.get() as usize - 1]
    }

    pub fn opt(&self, handle: Option<Text>) -> Option<&str> {
        handle.map(|h| self.get(h))
    }
}

/// Keys (lower-case UPNs) shared by every per-user map, each stored once.
#[derive(Default)]
pub struct Keys {
    index: HashMap<Box<str>, u32>,
}

impl Keys {
    pub fn intern(&mut self, key: &str) -> u32 {
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        let i = self.index.len() as u32;
        self.index.insert(key.into(), i);
        i
    }

    pub fn get(&self, key: &str) -> Option<u32> {
        self.index.get(key).copied()
    }
}

/// A directory object id as a map key: 16 bytes for the usual GUID, the text otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectId {
    Guid(u128),
    Other(Box<str>),
}

impl ObjectId {
    /// Case-insensitive, as Graph's ids are.
    pub fn new(id: &str) -> Self {
        match guid(id) {
            Some(value) => ObjectId::Guid(value),
            None => ObjectId::Other(id.to_ascii_lowercase().into()),
        }
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex digits, any case) as a number.
fn guid(text: &str) -> Option<u128> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let mut value: u128 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if b != b'-' {
                return None;
            }
            continue;
        }
        value = (value << 4) | (b as char).to_digit(16)? as u128;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_stored_once_and_read_back() {
        let mut texts = Texts::default();
        let a = texts.intern("2026-11-01");
        let b = texts.intern("2026-11-02");
        assert_eq!(texts.intern("2026-11-01"), a);
        assert_ne!(a, b);
        assert_eq!(texts.get(b), "2026-11-02");
        assert_eq!(texts.opt(None), None);
        assert_eq!(std::mem::size_of::<Option<Text>>(), 4);
    }

    #[test]
    fn object_ids_ignore_case_and_keep_what_is_not_a_guid() {
        let upper = ObjectId::new("0A1B2C3D-0000-4000-8000-00000000000F");
        let lower = ObjectId::new("0a1b2c3d-0000-4000-8000-00000000000f");
        assert_eq!(upper, lower);
        assert!(matches!(upper, ObjectId::Guid(_)));
        assert_ne!(ObjectId::new("0a1b2c3d-0000-4000-8000-00000000000e"), lower);
        assert_eq!(
            ObjectId::new("Not-A-Guid"),
            ObjectId::Other("not-a-guid".into())
        );
        // A hyphen out of place is not a GUID, so it cannot collide with one.
        assert!(matches!(
            ObjectId::new("0a1b2c3d00-00-4000-8000-00000000000f"),
            ObjectId::Other(_)
        ));
    }
}
