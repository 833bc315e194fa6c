//! How an error prints: itself and every cause behind it, on one line.
//!
//! ringlab's errors keep their causes (`#[source]`: kvm-ioctls' errno, an
//! `io::Error`, a lower layer's error) and each one's `Display` says only
//! its own level ("host error", "KVM_RUN", "cannot map the ROM"), so
//! printing the top level alone would lose the why. Whatever shows an
//! error to a person prints [`Chain`]: "host error: KVM_RUN: Bad file
//! descriptor (os error 9)", the same form anyhow's `{:#}` gives in the
//! frontend.

use std::error::Error;
use std::fmt;

/// Displays an error and its sources, joined by ": ".
pub struct Chain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the image")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_printed_once() {
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(e.to_string(), "reading the image");
        assert_eq!(Chain(&e).to_string(), "reading the image: disk on fire");
    }
}
