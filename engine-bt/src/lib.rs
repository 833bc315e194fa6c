//! The binary translator engine. Not written yet (issue 6).
