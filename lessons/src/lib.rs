//! The coursework labs. Not written yet (issue 5).
