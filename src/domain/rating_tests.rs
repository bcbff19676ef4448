//! Table-driven rating cases with hand-computed amounts, and property tests.

use super::*;
