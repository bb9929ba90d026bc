//! (being written: protocol core helper)
