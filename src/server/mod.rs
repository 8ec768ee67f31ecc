//! The server: a mio reactor for sockets, one actor thread per user for disk state.
