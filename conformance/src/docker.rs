//! Private dockerd fixture (filled in below).
