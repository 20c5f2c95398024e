//! Fixtures for driving berth through its real clients.
