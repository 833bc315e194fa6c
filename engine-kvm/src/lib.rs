//! The KVM engine. Not written yet (issue 4).
