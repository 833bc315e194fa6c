//! The interpreter engine. Not written yet (issue 3).
