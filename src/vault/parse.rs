//! The one parser of the vault file (`docs/FORMAT.md`): a single serde_json pass with
//! hand-written visitors, so that what the format forbids is refused while the file is
//! read, before anything is built from it:
//!
//! - **objects only.** serde's derived structs also take a JSON array in place of an
//!   object (`"k":["u","s"]` for an entry); a 64 MiB file of such entries made every
//!   action allocate 816 MiB before the entry bound was checked. Each visitor here
//!   implements `visit_map` alone, so an array is an error at the first one.
//! - **counted.** The 65th slot, the 10,001st entry and a slot's 17th member stop the
//!   parse before they are read; nothing grows past a bound of the format.
//! - **no member twice** at the top level, in a slot or in an entry, and **no entry key
//!   twice** (a first-match scan and a last-wins map would disagree about which one is
//!   meant): the sinks refuse duplicates.
//! - **borrowed.** Strings without escapes borrow from the file (`Cow`); a string with
//!   escapes is the only copy made, and it is never longer than its text in the file.
//!
//! What the entries become is the [`Sink`]'s business: [`super::Vault`] decodes them,
//! [`super::View`] checks them and keeps their text. Every entry is checked here, for
//! both, with the same code: lengths, and the secret's base64 without decoding it.
//! Slots are small (at most 64) and are handed over as [`RawSlot`]s, turned into typed
//! slots by one `match` over their `type` in `slot.rs`.
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::format::{
    FORMAT_VERSION, MAX_FORMAT_VERSION, METADATA_FORMAT_VERSION, SOURCES_FORMAT_VERSION, bounds,
};
use super::meta::{MAX_EXPIRES_AT, Provider, Rotation, check_api_url};
use super::source::{MAX_PARAMS, SourceDef, check_shape};
use crate::error::{Error, Result};

/// Most members one slot may have (the largest slot type has 8).
pub(super) const MAX_SLOT_MEMBERS: usize = 16;

/// Receives each entry, already checked: server URL and username of 1 to
/// [`bounds::MAX_KEY`] bytes, secret (and pending secret) canonical base64 within
/// [`bounds::MAX_ENTRY_CIPHERTEXT`], metadata within its bounds. An `Err` is the
/// reason the file is refused.
pub(super) trait Sink<'de> {
    fn entry(
        &mut self,
        server: Cow<'de, str>,
        username: Cow<'de, str>,
        secret: Cow<'de, str>,
        meta: RawMeta<'de>,
    ) -> Result<(), String>;
}

/// An entry's metadata as read (format version 3, `docs/FORMAT.md` "Entry
/// metadata"): every member checked, the pending secret still base64.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawMeta<'de> {
    /// `expires_at`: Unix seconds, at most [`MAX_EXPIRES_AT`].
    pub expires_at: Option<u64>,
    /// `rotate`: the provider, its API URL and the MAC (not verified here: that
    /// needs the key). Boxed: a [`super::View`] keeps one `RawMeta` per entry, and
    /// most have no rotation.
    pub rotation: Option<Box<Rotation>>,
    /// `pending`: a rotation's new secret, sealed.
    pub pending: Option<Cow<'de, str>>,
    /// `source`: the kind, parameters and MAC of a sealed source (format version 4;
    /// not verified here). Boxed, as `rotation`.
    pub source: Option<Box<SourceDef>>,
}

impl RawMeta<'_> {
    /// Whether the entry has no metadata member.
    pub fn is_empty(&self) -> bool {
        self.expires_at.is_none()
            && self.rotation.is_none()
            && self.pending.is_none()
            && self.source.is_none()
    }
}

/// The file as read, before its slots and top-level members are interpreted.
pub(super) struct RawFile<'de, S> {
    /// The `lockbox` member: a version this build reads.
    pub version: u64,
    pub public_key: Cow<'de, str>,
    pub slots: Vec<RawSlot<'de>>,
    pub slots_mac: Cow<'de, str>,
    pub entries: S,
}

/// One slot's members in file order, each name at most once.
pub(super) struct RawSlot<'de> {
    pub index: usize,
    members: Vec<(Cow<'de, str>, Member<'de>)>,
}

/// A slot member's value: slots hold only strings and non-negative integers.
pub(super) enum Member<'de> {
    Text(Cow<'de, str>),
    Int(u64),
}

impl<'de> RawSlot<'de> {
    fn take(&mut self, name: &str) -> Result<Member<'de>, String> {
        let i = self
            .members
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| format!("slot {}: missing member `{name}`", self.index))?;
        Ok(self.members.swap_remove(i).1)
    }

    /// The string member `name`, which must be present.
    pub fn text(&mut self, name: &str) -> Result<Cow<'de, str>, String> {
        match self.take(name)? {
            Member::Text(t) => Ok(t),
            Member::Int(_) => Err(format!("slot {}: `{name}` must be a string", self.index)),
        }
    }

    /// The integer member `name`, which must be present and fit a u32.
    pub fn u32(&mut self, name: &str) -> Result<u32, String> {
        match self.take(name)? {
            Member::Int(n) => u32::try_from(n)
                .map_err(|_| format!("slot {}: `{name}` is out of range", self.index)),
            Member::Text(_) => Err(format!("slot {}: `{name}` must be an integer", self.index)),
        }
    }

    /// Refuses the members nobody took: a member this version does not know.
    pub fn finish(self) -> Result<(), String> {
        match self.members.first() {
            None => Ok(()),
            Some((name, _)) => Err(format!(
                "slot {}: unknown member {}",
                self.index,
                quoted(name)
            )),
        }
    }
}

/// A member name for a message: short names quoted, long ones not repeated.
fn quoted(name: &str) -> String {
    if name.len() <= 40 {
        format!("{name:?}")
    } else {
        "(a long name)".to_owned()
    }
}

/// Reads `bytes` as a vault file, giving each entry to `sink`. `path` is only used in
/// errors.
pub(super) fn file<'de, S: Sink<'de>>(
    bytes: &'de [u8],
    sink: S,
    path: &Path,
) -> Result<RawFile<'de, S>, Error> {
    let ctx = Ctx {
        path,
        why: RefCell::new(None),
        metadata: Cell::new(false),
        sources: Cell::new(false),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let read = de
        .deserialize_map(FileVisitor {
            ctx: &ctx,
            sink: Some(sink),
        })
        .and_then(|f| de.end().map(|()| f));
    match read {
        Ok(f) => Ok(f),
        Err(e) => {
            // Tell a newer format apart from a damaged file first: a reader must not
            // interpret the rest of a file whose version it does not know.
            if let Some(version) = probe_version(bytes)
                && !(FORMAT_VERSION..=MAX_FORMAT_VERSION).contains(&version)
            {
                return Err(unsupported(path, version));
            }
            Err(ctx
                .why
                .into_inner()
                .unwrap_or_else(|| Error::corrupt(path, format!("not a lockbox vault: {e}"))))
        }
    }
}

fn unsupported(path: &Path, version: u64) -> Error {
    Error::UnsupportedVersion {
        path: path.to_owned(),
        version,
    }
}

/// The first `lockbox` member of a top-level object, if it is a non-negative integer;
/// whatever follows it is not read.
fn probe_version(bytes: &[u8]) -> Option<u64> {
    struct Probe<'a>(&'a Cell<Option<u64>>);
    impl<'de> Visitor<'de> for Probe<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(Text(name)) = map.next_key()? {
                if name == "lockbox" {
                    self.0.set(Some(map.next_value::<u64>()?));
                    return Ok(());
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let found = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // Stopping at `lockbox` leaves the rest unread, which serde_json reports as an
    // error: the version found is the answer either way.
    let _ = de.deserialize_map(Probe(&found));
    found.get()
}

/// What the visitors share: the path for errors, and the typed reason a visitor
/// refused the file (serde's errors carry only text).
struct Ctx<'p> {
    path: &'p Path,
    why: RefCell<Option<Error>>,
    /// Whether an entry had metadata, which only version 3 allows (the version may
    /// come after the entries in a file written by hand).
    metadata: Cell<bool>,
    /// Whether an entry was a source, which only version 4 allows.
    sources: Cell<bool>,
}

impl Ctx<'_> {
    fn refuse<E: de::Error>(&self, error: Error) -> E {
        let text = error.to_string();
        self.why.borrow_mut().get_or_insert(error);
        E::custom(text)
    }

    fn damaged<E: de::Error>(&self, reason: String) -> E {
        self.refuse(Error::corrupt(self.path, reason))
    }
}

/// A string from the file, borrowed when it had no escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> de::Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Member<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a non-negative integer")
            }
            fn visit_u64<E>(self, n: u64) -> Result<Member<'de>, E> {
                Ok(Member::Int(n))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Member<'de>, E> {
                Ok(Member::Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Member<'de>, E> {
                Ok(Member::Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Member<'de>, E> {
                Ok(Member::Text(Cow::Owned(s)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Sets `slot` once; a second occurrence of the member is refused.
fn once<T, E: de::Error>(ctx: &Ctx, slot: &mut Option<T>, name: &str, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(ctx.damaged(format!("the member `{name}` appears twice")));
    }
    *slot = Some(value);
    Ok(())
}

struct FileVisitor<'c, 'p, S> {
    ctx: &'c Ctx<'p>,
    sink: Option<S>,
}

impl<'de, S: Sink<'de>> Visitor<'de> for FileVisitor<'_, '_, S> {
    type Value = RawFile<'de, S>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a lockbox vault object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        let (mut lockbox, mut public_key, mut slots, mut slots_mac, mut entries) =
            (None, None, None, None, None);
        while let Some(Text(name)) = map.next_key()? {
            match name.as_ref() {
                "lockbox" => {
                    let version: u64 = map.next_value()?;
                    if !(FORMAT_VERSION..=MAX_FORMAT_VERSION).contains(&version) {
                        // Nothing after an unknown version is interpreted.
                        return Err(ctx.refuse(unsupported(ctx.path, version)));
                    }
                    once(ctx, &mut lockbox, "lockbox", version)?;
                }
                "public_key" => {
                    let Text(t) = map.next_value()?;
                    once(ctx, &mut public_key, "public_key", t)?;
                }
                "slots" => {
                    if slots.is_some() {
                        return Err(ctx.damaged("the member `slots` appears twice".into()));
                    }
                    slots = Some(map.next_value_seed(SlotsSeed { ctx })?);
                }
                "slots_mac" => {
                    let Text(t) = map.next_value()?;
                    once(ctx, &mut slots_mac, "slots_mac", t)?;
                }
                "entries" => {
                    let Some(sink) = self.sink.take() else {
                        return Err(ctx.damaged("the member `entries` appears twice".into()));
                    };
                    entries = Some(map.next_value_seed(EntriesSeed { ctx, sink })?);
                }
                other => {
                    return Err(ctx.damaged(format!("unknown top-level member {}", quoted(other))));
                }
            }
        }
        let missing = |name: &str| ctx.damaged(format!("missing member `{name}`"));
        let version = lockbox.ok_or_else(|| missing("lockbox"))?;
        if ctx.metadata.get() && version < METADATA_FORMAT_VERSION {
            return Err(ctx.damaged(format!(
                "entry metadata in a version {version} file (it needs version {METADATA_FORMAT_VERSION})"
            )));
        }
        if ctx.sources.get() && version < SOURCES_FORMAT_VERSION {
            return Err(ctx.damaged(format!(
                "a source in a version {version} file (it needs version {SOURCES_FORMAT_VERSION})"
            )));
        }
        Ok(RawFile {
            version,
            public_key: public_key.ok_or_else(|| missing("public_key"))?,
            slots: slots.ok_or_else(|| missing("slots"))?,
            slots_mac: slots_mac.ok_or_else(|| missing("slots_mac"))?,
            entries: entries.ok_or_else(|| missing("entries"))?,
        })
    }
}

struct SlotsSeed<'c, 'p> {
    ctx: &'c Ctx<'p>,
}

impl<'de> DeserializeSeed<'de> for SlotsSeed<'_, '_> {
    type Value = Vec<RawSlot<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SlotsSeed<'_, '_> {
    type Value = Vec<RawSlot<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of slot objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut slots = Vec::new();
        loop {
            if slots.len() == bounds::MAX_SLOTS {
                // Skipped, not read: whatever the 65th slot is, it is one too many.
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(self
                        .ctx
                        .damaged(format!("more than {} slots", bounds::MAX_SLOTS)));
                }
                return Ok(slots);
            }
            let seed = SlotSeed {
                ctx: self.ctx,
                index: slots.len(),
            };
            match seq.next_element_seed(seed)? {
                Some(slot) => slots.push(slot),
                None => return Ok(slots),
            }
        }
    }
}

struct SlotSeed<'c, 'p> {
    ctx: &'c Ctx<'p>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for SlotSeed<'_, '_> {
    type Value = RawSlot<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SlotSeed<'_, '_> {
    type Value = RawSlot<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a slot object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members: Vec<(Cow<'de, str>, Member<'de>)> = Vec::new();
        while let Some(Text(name)) = map.next_key()? {
            if members.len() == MAX_SLOT_MEMBERS {
                return Err(self
                    .ctx
                    .damaged(format!("slot {} has too many members", self.index)));
            }
            if members.iter().any(|(n, _)| *n == name) {
                return Err(self.ctx.damaged(format!(
                    "slot {}: the member {} appears twice",
                    self.index,
                    quoted(&name)
                )));
            }
            let value = map.next_value()?;
            members.push((name, value));
        }
        Ok(RawSlot {
            index: self.index,
            members,
        })
    }
}

struct EntriesSeed<'c, 'p, S> {
    ctx: &'c Ctx<'p>,
    sink: S,
}

impl<'de, S: Sink<'de>> DeserializeSeed<'de> for EntriesSeed<'_, '_, S> {
    type Value = S;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: Sink<'de>> Visitor<'de> for EntriesSeed<'_, '_, S> {
    type Value = S;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of entries")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<S, A::Error> {
        let ctx = self.ctx;
        let mut count = 0usize;
        while let Some(Text(server)) = map.next_key()? {
            count += 1;
            if count > bounds::MAX_ENTRIES {
                return Err(ctx.damaged(format!("more than {} entries", bounds::MAX_ENTRIES)));
            }
            let (username, secret, meta) = map.next_value_seed(EntrySeed { ctx })?;
            check_names(&server, &username).map_err(|r| ctx.damaged(r))?;
            if !meta.is_empty() {
                ctx.metadata.set(true);
            }
            if meta.source.is_some() {
                ctx.sources.set(true);
            }
            self.sink
                .entry(server, username, secret, meta)
                .map_err(|r| ctx.damaged(r))?;
        }
        Ok(self.sink)
    }
}

/// The checks on an entry's server URL and username, for the parser and for a writer.
pub(super) fn check_names(server: &str, username: &str) -> Result<(), String> {
    if server.is_empty() || username.is_empty() {
        return Err("an entry has an empty server URL or username".into());
    }
    if server.len() > bounds::MAX_KEY || username.len() > bounds::MAX_KEY {
        return Err("an entry's server URL or username is too long".into());
    }
    Ok(())
}

struct EntrySeed<'c, 'p> {
    ctx: &'c Ctx<'p>,
}

/// An entry as read: username, secret (base64) and metadata.
type EntryParts<'de> = (Cow<'de, str>, Cow<'de, str>, RawMeta<'de>);

impl<'de> DeserializeSeed<'de> for EntrySeed<'_, '_> {
    type Value = EntryParts<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_, '_> {
    type Value = EntryParts<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an entry object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        let (mut username, mut secret) = (None, None);
        let (mut expires_at, mut rotation, mut pending, mut source) = (None, None, None, None);
        while let Some(Text(name)) = map.next_key()? {
            match name.as_ref() {
                "username" => {
                    let Text(t) = map.next_value()?;
                    once(ctx, &mut username, "username", t)?;
                }
                "secret" | "pending" => {
                    let Text(t) = map.next_value()?;
                    check_b64_text(&name, t.as_bytes(), bounds::MAX_ENTRY_CIPHERTEXT)
                        .map_err(|r| ctx.damaged(r))?;
                    let slot = if name == "secret" {
                        &mut secret
                    } else {
                        &mut pending
                    };
                    once(ctx, slot, &name, t)?;
                }
                "expires_at" => {
                    let t: u64 = map.next_value()?;
                    if t > MAX_EXPIRES_AT {
                        return Err(ctx.damaged("an entry's expires_at is out of range".into()));
                    }
                    once(ctx, &mut expires_at, "expires_at", t)?;
                }
                "rotate" => {
                    let r = map.next_value_seed(RotateSeed { ctx })?;
                    once(ctx, &mut rotation, "rotate", Box::new(r))?;
                }
                "source" => {
                    let r = map.next_value_seed(SourceSeed { ctx })?;
                    once(ctx, &mut source, "source", Box::new(r))?;
                }
                other => {
                    return Err(ctx.damaged(format!("unknown entry member {}", quoted(other))));
                }
            }
        }
        let missing = |name: &str| ctx.damaged(format!("an entry has no `{name}`"));
        if source.is_some() && (rotation.is_some() || pending.is_some()) {
            return Err(ctx.damaged("a source entry has rotation settings".into()));
        }
        let meta = RawMeta {
            expires_at,
            rotation,
            pending,
            source,
        };
        Ok((
            username.ok_or_else(|| missing("username"))?,
            secret.ok_or_else(|| missing("secret"))?,
            meta,
        ))
    }
}

/// An entry's `rotate` object: `kind`, `api`, `robot_id` (Harbor only) and `mac`.
struct RotateSeed<'c, 'p> {
    ctx: &'c Ctx<'p>,
}

impl<'de> DeserializeSeed<'de> for RotateSeed<'_, '_> {
    type Value = Rotation;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RotateSeed<'_, '_> {
    type Value = Rotation;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a rotate object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Rotation, A::Error> {
        let ctx = self.ctx;
        let (mut kind, mut api, mut robot_id, mut mac) = (None, None, None, None);
        while let Some(Text(name)) = map.next_key()? {
            match name.as_ref() {
                "kind" => {
                    let Text(t) = map.next_value()?;
                    once(ctx, &mut kind, "kind", t)?;
                }
                "api" => {
                    let Text(t) = map.next_value()?;
                    check_api_url(&t).map_err(|r| ctx.damaged(format!("rotate: {r}")))?;
                    once(ctx, &mut api, "api", t)?;
                }
                "robot_id" => {
                    let n: u64 = map.next_value()?;
                    once(ctx, &mut robot_id, "robot_id", n)?;
                }
                "mac" => {
                    let Text(t) = map.next_value()?;
                    once(ctx, &mut mac, "mac", t)?;
                }
                other => {
                    return Err(ctx.damaged(format!("unknown rotate member {}", quoted(other))));
                }
            }
        }
        let missing = |name: &str| ctx.damaged(format!("a rotate object has no `{name}`"));
        let kind = kind.ok_or_else(|| missing("kind"))?;
        let provider = Provider::from_parts(&kind, robot_id)
            .map_err(|r| ctx.damaged(format!("rotate: {r}")))?;
        let bad = |reason: String| Error::corrupt(ctx.path, reason);
        let mac = mac.ok_or_else(|| missing("mac"))?;
        let mac: [u8; 32] = b64(&bad, "rotate mac", &mac, 32)
            .map_err(|e| ctx.refuse(e))?
            .try_into()
            .map_err(|_| ctx.damaged("rotate mac is not 32 bytes".into()))?;
        Ok(Rotation {
            provider,
            api: api.ok_or_else(|| missing("api"))?.into_owned(),
            mac,
        })
    }
}

/// An entry's `source` object: `kind`, `params` (an object of strings) and `mac`.
struct SourceSeed<'c, 'p> {
    ctx: &'c Ctx<'p>,
}

impl<'de> DeserializeSeed<'de> for SourceSeed<'_, '_> {
    type Value = SourceDef;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SourceSeed<'_, '_> {
    type Value = SourceDef;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a source object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SourceDef, A::Error> {
        let ctx = self.ctx;
        let (mut kind, mut params, mut mac) = (None, None, None);
        while let Some(Text(name)) = map.next_key()? {
            match name.as_ref() {
                "kind" => {
                    let Text(t) = map.next_value()?;
                    once(ctx, &mut kind, "kind", t.into_owned())?;
                }
                "params" => {
                    let p = map.next_value_seed(ParamsSeed { ctx })?;
                    once(ctx, &mut params, "params", p)?;
                }
                "mac" => {
                    let Text(t) = map.next_value()?;
                    once(ctx, &mut mac, "mac", t)?;
                }
                other => {
                    return Err(ctx.damaged(format!("unknown source member {}", quoted(other))));
                }
            }
        }
        let missing = |name: &str| ctx.damaged(format!("a source object has no `{name}`"));
        let kind = kind.ok_or_else(|| missing("kind"))?;
        let params = params.ok_or_else(|| missing("params"))?;
        check_shape(&kind, &params).map_err(|r| ctx.damaged(format!("source: {r}")))?;
        let bad = |reason: String| Error::corrupt(ctx.path, reason);
        let mac = mac.ok_or_else(|| missing("mac"))?;
        let mac: [u8; 32] = b64(&bad, "source mac", &mac, 32)
            .map_err(|e| ctx.refuse(e))?
            .try_into()
            .map_err(|_| ctx.damaged("source mac is not 32 bytes".into()))?;
        Ok(SourceDef { kind, params, mac })
    }
}

/// A source's `params`: at most [`MAX_PARAMS`] string members, none twice.
struct ParamsSeed<'c, 'p> {
    ctx: &'c Ctx<'p>,
}

impl<'de> DeserializeSeed<'de> for ParamsSeed<'_, '_> {
    type Value = std::collections::BTreeMap<String, String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ParamsSeed<'_, '_> {
    type Value = std::collections::BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of source parameters")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        let mut params = std::collections::BTreeMap::new();
        while let Some(Text(name)) = map.next_key()? {
            if params.len() >= MAX_PARAMS {
                return Err(ctx.damaged(format!("a source has more than {MAX_PARAMS} parameters")));
            }
            let Text(value) = map.next_value()?;
            if params
                .insert(name.into_owned(), value.into_owned())
                .is_some()
            {
                return Err(ctx.damaged("a source parameter appears twice".into()));
            }
        }
        Ok(params)
    }
}

/// Checks a base64 field without decoding it: at most `4·⌈max/3⌉` characters (the
/// encoded length of `max` bytes) and exactly what the standard padded decoder accepts.
pub(super) fn check_b64_text(field: &str, text: &[u8], max: usize) -> Result<(), String> {
    if text.len() > max.div_ceil(3) * 4 {
        return Err(format!("{field} is too long"));
    }
    if !is_canonical_b64(text) {
        return Err(format!("{field} is not base64"));
    }
    Ok(())
}

/// Whether `text` is what the base64 crate's `STANDARD` engine decodes: the standard
/// alphabet, a length that is a multiple of 4, `=` padding only at the end (one or two),
/// and zero bits left over in the last symbol before the padding.
pub(super) fn is_canonical_b64(text: &[u8]) -> bool {
    const fn value(b: u8) -> u8 {
        match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => 0xff,
        }
    }
    if !text.len().is_multiple_of(4) {
        return false;
    }
    let Some(body_len) = text.len().checked_sub(4) else {
        return true; // empty
    };
    let (body, last) = text.split_at(body_len);
    // Branch-free over the body, so the compiler can check many bytes at a time: this
    // runs over every secret of the file on every `get`.
    let bad = body.iter().fold(0u8, |acc, &b| {
        let ok = (b.wrapping_sub(b'A') < 26)
            | (b.wrapping_sub(b'a') < 26)
            | (b.wrapping_sub(b'0') < 10)
            | (b == b'+')
            | (b == b'/');
        acc | u8::from(!ok)
    });
    if bad != 0 {
        return false;
    }
    let v = [last[0], last[1], last[2], last[3]].map(value);
    match (last[2], last[3]) {
        (b'=', b'=') => v[0] != 0xff && v[1] != 0xff && v[1] & 0x0f == 0,
        (_, b'=') => v[0] != 0xff && v[1] != 0xff && v[2] != 0xff && v[2] & 0x03 == 0,
        _ => v.iter().all(|&x| x != 0xff),
    }
}

/// Decodes a base64 field, checking its encoded length first: never allocate for an
/// oversized field.
pub(super) fn b64(
    bad: &dyn Fn(String) -> Error,
    field: &str,
    text: &str,
    max: usize,
) -> Result<Vec<u8>> {
    check_b64_text(field, text.as_bytes(), max).map_err(bad)?;
    B64.decode(text)
        .map_err(|_| bad(format!("{field} is not base64")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_b64_examples() {
        for (text, ok) in [
            ("", true),
            ("AAAA", true),
            ("AA==", true),
            ("AB==", false),
            ("AAA=", true),
            ("AAB=", false),
            ("A===", false),
            ("====", false),
            ("AA=A", false),
            ("AA", false),
            ("AAAA====", false),
            ("A=AA", false),
            ("AAAAAA==", true),
            ("AA==AAAA", false),
            ("+/+/", true),
            ("-_-_", false),
            ("AAA ", false),
        ] {
            assert_eq!(is_canonical_b64(text.as_bytes()), ok, "{text:?}");
            assert_eq!(B64.decode(text).is_ok(), ok, "the decoder on {text:?}");
        }
    }

    proptest! {
        /// The check is exactly the decoder, on text made mostly of base64 characters.
        #[test]
        fn canonical_b64_is_the_decoder(text in "[A-Za-z0-9+/=]{0,16}[A-D=\\- \n]{0,3}") {
            prop_assert_eq!(is_canonical_b64(text.as_bytes()), B64.decode(&text).is_ok());
        }

        #[test]
        fn canonical_b64_accepts_every_encoding(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert!(is_canonical_b64(B64.encode(&bytes).as_bytes()));
        }
    }
}
