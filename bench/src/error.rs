//! The benches' one error type: any error, reported by its message.

pub type Error = Box<dyn std::error::Error + Send + Sync>;
