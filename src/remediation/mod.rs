//! Acting on a gateway: the restart methods ([`method`]) and the field
//! report's standard recovery procedure, §5.1 ([`recover`]).

pub mod method;
pub mod recover;
