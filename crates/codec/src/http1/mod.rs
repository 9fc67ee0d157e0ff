//! (http1: under construction)
