//! The format's numbers (`docs/FORMAT.md`): its versions and the bounds checked on
//! every field read from a file, shared by the parser, the slots and the writer.

/// The format version of a vault without an OpenBao slot or a plugin/tag recipient
/// (`docs/FORMAT.md` "Versions").
pub const FORMAT_VERSION: u64 = 1;
/// The format version of a vault that holds an OpenBao slot or an age slot for a
/// plugin or tag recipient, which a version-1 reader would refuse; also the newest
/// version this build reads.
pub const OPENBAO_FORMAT_VERSION: u64 = 2;
/// The same version 2, named for what plugin and tag recipients need.
pub const PLUGIN_FORMAT_VERSION: u64 = OPENBAO_FORMAT_VERSION;
/// Version 3: version 2 plus entry metadata (an entry's expiry, rotation settings and
/// pending rotation secret), written only for a vault with an entry that has some.
pub const METADATA_FORMAT_VERSION: u64 = 3;
/// Version 4: version 3 plus sealed sources (an entry's `source` member), written only
/// for a vault that holds a source, so a version-3 reader refuses it by its number.
pub const SOURCES_FORMAT_VERSION: u64 = 4;
/// The newest format version this build reads (`docs/FORMAT.md` "Versions").
pub const MAX_FORMAT_VERSION: u64 = SOURCES_FORMAT_VERSION;

/// Bounds checked on every field read from a file (`docs/FORMAT.md` "Bounds").
pub mod bounds {
    /// Most slots in one vault.
    pub const MAX_SLOTS: usize = 64;
    /// Most entries in one vault.
    pub const MAX_ENTRIES: usize = 10_000;
    /// Longest slot label, bytes.
    pub const MAX_LABEL: usize = 256;
    /// Longest recipient text, bytes (an ssh-rsa 16384-bit key is about 2.8 KB).
    pub const MAX_RECIPIENT: usize = 8 * 1024;
    /// Longest wrapped key in an age slot, bytes (an ssh-rsa stanza is below 3 KB).
    pub const MAX_AGE_WRAPPED: usize = 16 * 1024;
    /// Longest wrapped key in a passphrase slot, bytes (74-byte key + 16-byte tag).
    pub const MAX_PASSPHRASE_WRAPPED: usize = 256;
    /// Longest server URL or username, bytes: the whole protocol input is 1 MiB.
    pub const MAX_KEY: usize = 1 << 20;
    /// Longest entry ciphertext, bytes: a 1 MiB secret plus age's overhead.
    pub const MAX_ENTRY_CIPHERTEXT: usize = (1 << 20) + 64 * 1024;
    /// Most passphrase slots in one vault: `passwd` manages "the" passphrase.
    pub const MAX_PASSPHRASE_SLOTS: usize = 1;
}

/// Whether `n` bytes encode within the base64 bound of `max` bytes (`4·⌈max/3⌉`
/// characters), the check the parser makes on the text.
pub fn fits_b64(n: usize, max: usize) -> bool {
    n.div_ceil(3) <= max.div_ceil(3)
}
