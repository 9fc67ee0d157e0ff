//! (ws: under construction)
