//! One-time sequences: pure functions over the file's text. PLACEHOLDER: the parser work
//! fills this in. The file I/O belongs to the daemon.
