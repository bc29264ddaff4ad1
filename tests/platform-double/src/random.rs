//! Random strings in the shapes the platforms use.

use rand::Rng;

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `len` characters from `[a-z0-9]`.
pub(crate) fn lower_alnum(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(LOWER_ALNUM[rng.random_range(0..LOWER_ALNUM.len())]))
        .collect()
}

/// A number drawn uniformly from `low..=high`.
pub(crate) fn between(low: usize, high: usize) -> usize {
    rand::rng().random_range(low..=high)
}

/// `len` random bytes.
pub(crate) fn bytes(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    rand::rng().fill(buf.as_mut_slice());
    buf
}

/// A version-4-looking UUID, as Shoptet puts in `metadata.requestId`.
pub(crate) fn request_id() -> String {
    let hex: String = bytes(16).iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}
