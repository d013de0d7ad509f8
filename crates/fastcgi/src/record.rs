//! FastCGI records (FastCGI 1.0 sections 3.3 and 8): the 8-byte header, record types, roles,
//! protocol status codes. The records' contents are in [`crate::payload`].
//!
//! Parsing uses nom streaming combinators; nom's types stay inside this module. A record is
//! `header · contentData[contentLength] · paddingData[paddingLength]`:
//!
//! ```text
//!  version type requestIdB1 requestIdB0 contentLengthB1 contentLengthB0 paddingLength reserved
//! ```

use std::fmt;

use nom::number::streaming::{be_u16, be_u8};
use nom::sequence::tuple;
use nom::IResult;

pub use crate::payload::{
    padding_for, put_header, BeginRequestBody, EndRequestBody, Payload, Record, UnknownTypeBody,
};

/// Listening socket file number (section 8): a web server that spawns us passes the listening
/// socket as file descriptor 0.
pub const FCGI_LISTENSOCK_FILENO: i32 = 0;
/// Number of bytes in a `FCGI_Header` (section 8).
pub const FCGI_HEADER_LEN: usize = 8;
/// Value for the `version` component of `FCGI_Header` (section 8).
pub const FCGI_VERSION_1: u8 = 1;
/// The null request ID, used by management records (section 3.3).
pub const FCGI_NULL_REQUEST_ID: u16 = 0;
/// Mask for the `flags` component of `FCGI_BeginRequestBody` (section 5.1).
pub const FCGI_KEEP_CONN: u8 = 1;
/// `contentData` is "between 0 and 65535 bytes" (section 3.3).
pub const FCGI_MAX_CONTENT_LEN: usize = 65535;
/// `paddingData` is "between 0 and 255 bytes" (section 3.3).
pub const FCGI_MAX_PADDING_LEN: usize = 255;
/// The longest possible record on the wire.
pub const FCGI_MAX_RECORD_LEN: usize =
    FCGI_HEADER_LEN + FCGI_MAX_CONTENT_LEN + FCGI_MAX_PADDING_LEN;
/// Length of the bodies of `FCGI_BEGIN_REQUEST`, `FCGI_END_REQUEST` and `FCGI_UNKNOWN_TYPE`.
pub const FIXED_BODY_LEN: u16 = 8;

/// `FCGI_GET_VALUES` variable: maximum concurrent transport connections (section 4.1).
pub const FCGI_MAX_CONNS: &str = "FCGI_MAX_CONNS";
/// `FCGI_GET_VALUES` variable: maximum concurrent requests (section 4.1).
pub const FCGI_MAX_REQS: &str = "FCGI_MAX_REQS";
/// `FCGI_GET_VALUES` variable: `"1"` if the application multiplexes connections (section 4.1).
pub const FCGI_MPXS_CONNS: &str = "FCGI_MPXS_CONNS";

/// The `type` component of a record header (section 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// `FCGI_BEGIN_REQUEST` (1).
    BeginRequest,
    /// `FCGI_ABORT_REQUEST` (2).
    AbortRequest,
    /// `FCGI_END_REQUEST` (3).
    EndRequest,
    /// `FCGI_PARAMS` (4).
    Params,
    /// `FCGI_STDIN` (5).
    Stdin,
    /// `FCGI_STDOUT` (6).
    Stdout,
    /// `FCGI_STDERR` (7).
    Stderr,
    /// `FCGI_DATA` (8).
    Data,
    /// `FCGI_GET_VALUES` (9).
    GetValues,
    /// `FCGI_GET_VALUES_RESULT` (10).
    GetValuesResult,
    /// `FCGI_UNKNOWN_TYPE` (11).
    UnknownType,
    /// A type this version of the protocol does not define.
    Other(u8),
}

impl RecordType {
    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::BeginRequest => 1,
            Self::AbortRequest => 2,
            Self::EndRequest => 3,
            Self::Params => 4,
            Self::Stdin => 5,
            Self::Stdout => 6,
            Self::Stderr => 7,
            Self::Data => 8,
            Self::GetValues => 9,
            Self::GetValuesResult => 10,
            Self::UnknownType => 11,
            Self::Other(t) => t,
        }
    }

    /// The body length a discrete record of this type must have, if fixed.
    pub fn fixed_content_length(self) -> Option<u16> {
        match self {
            Self::BeginRequest | Self::EndRequest | Self::UnknownType => Some(FIXED_BODY_LEN),
            Self::AbortRequest => Some(0),
            _ => None,
        }
    }
}

impl From<u8> for RecordType {
    fn from(t: u8) -> Self {
        match t {
            1 => Self::BeginRequest,
            2 => Self::AbortRequest,
            3 => Self::EndRequest,
            4 => Self::Params,
            5 => Self::Stdin,
            6 => Self::Stdout,
            7 => Self::Stderr,
            8 => Self::Data,
            9 => Self::GetValues,
            10 => Self::GetValuesResult,
            11 => Self::UnknownType,
            t => Self::Other(t),
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::BeginRequest => "FCGI_BEGIN_REQUEST",
            Self::AbortRequest => "FCGI_ABORT_REQUEST",
            Self::EndRequest => "FCGI_END_REQUEST",
            Self::Params => "FCGI_PARAMS",
            Self::Stdin => "FCGI_STDIN",
            Self::Stdout => "FCGI_STDOUT",
            Self::Stderr => "FCGI_STDERR",
            Self::Data => "FCGI_DATA",
            Self::GetValues => "FCGI_GET_VALUES",
            Self::GetValuesResult => "FCGI_GET_VALUES_RESULT",
            Self::UnknownType => "FCGI_UNKNOWN_TYPE",
            Self::Other(t) => return write!(f, "record type {t}"),
        };
        f.write_str(name)
    }
}

/// The `role` component of `FCGI_BeginRequestBody` (section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `FCGI_RESPONDER` (1): the CGI/1.1 role (section 6.2).
    Responder,
    /// `FCGI_AUTHORIZER` (2) (section 6.3).
    Authorizer,
    /// `FCGI_FILTER` (3) (section 6.4).
    Filter,
    /// A role this version of the protocol does not define.
    Other(u16),
}

impl From<u16> for Role {
    fn from(r: u16) -> Self {
        match r {
            1 => Self::Responder,
            2 => Self::Authorizer,
            3 => Self::Filter,
            r => Self::Other(r),
        }
    }
}

impl Role {
    /// The wire value.
    pub fn as_u16(self) -> u16 {
        match self {
            Self::Responder => 1,
            Self::Authorizer => 2,
            Self::Filter => 3,
            Self::Other(r) => r,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Responder => f.write_str("FCGI_RESPONDER"),
            Self::Authorizer => f.write_str("FCGI_AUTHORIZER"),
            Self::Filter => f.write_str("FCGI_FILTER"),
            Self::Other(r) => write!(f, "role {r}"),
        }
    }
}

/// The `protocolStatus` component of `FCGI_EndRequestBody` (section 5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE` (0): normal end of request.
    RequestComplete,
    /// `FCGI_CANT_MPX_CONN` (1): rejecting a new request because the application does not
    /// multiplex (never sent by us: we multiplex).
    CantMpxConn,
    /// `FCGI_OVERLOADED` (2): rejecting a new request because the application runs out of some
    /// resource.
    Overloaded,
    /// `FCGI_UNKNOWN_ROLE` (3): rejecting a new request with a role we do not play.
    UnknownRole,
    /// A status this version of the protocol does not define.
    Other(u8),
}

impl From<u8> for ProtocolStatus {
    fn from(s: u8) -> Self {
        match s {
            0 => Self::RequestComplete,
            1 => Self::CantMpxConn,
            2 => Self::Overloaded,
            3 => Self::UnknownRole,
            s => Self::Other(s),
        }
    }
}

impl ProtocolStatus {
    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::RequestComplete => 0,
            Self::CantMpxConn => 1,
            Self::Overloaded => 2,
            Self::UnknownRole => 3,
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for ProtocolStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RequestComplete => f.write_str("FCGI_REQUEST_COMPLETE"),
            Self::CantMpxConn => f.write_str("FCGI_CANT_MPX_CONN"),
            Self::Overloaded => f.write_str("FCGI_OVERLOADED"),
            Self::UnknownRole => f.write_str("FCGI_UNKNOWN_ROLE"),
            Self::Other(s) => write!(f, "protocol status {s}"),
        }
    }
}

/// `FCGI_Header` (section 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// `version`; only [`FCGI_VERSION_1`] is defined.
    pub version: u8,
    /// `type`.
    pub record_type: RecordType,
    /// `requestIdB1 << 8 | requestIdB0`.
    pub request_id: u16,
    /// `contentLengthB1 << 8 | contentLengthB0`.
    pub content_length: u16,
    /// `paddingLength`.
    pub padding_length: u8,
}

impl RecordHeader {
    /// Parses the first [`FCGI_HEADER_LEN`] bytes; `None` when fewer are available.
    pub fn parse(input: &[u8]) -> Option<Self> {
        parse_header(input).ok().map(|(_, h)| h)
    }

    /// The whole record's length on the wire: header, content and padding.
    pub fn record_len(&self) -> usize {
        FCGI_HEADER_LEN + usize::from(self.content_length) + usize::from(self.padding_length)
    }

    /// The 8 header bytes (the `reserved` byte is zero).
    pub fn to_bytes(&self) -> [u8; FCGI_HEADER_LEN] {
        let [id1, id0] = self.request_id.to_be_bytes();
        let [len1, len0] = self.content_length.to_be_bytes();
        [
            self.version,
            self.record_type.as_u8(),
            id1,
            id0,
            len1,
            len0,
            self.padding_length,
            0,
        ]
    }
}

fn parse_header(input: &[u8]) -> IResult<&[u8], RecordHeader> {
    let (rest, (version, record_type, request_id, content_length, padding_length, _reserved)) =
        tuple((be_u8, be_u8, be_u16, be_u16, be_u8, be_u8))(input)?;
    let header = RecordHeader {
        version,
        record_type: RecordType::from(record_type),
        request_id,
        content_length,
        padding_length,
    };
    Ok((rest, header))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_from_spec_fields() {
        // {FCGI_PARAMS, 1, 300 bytes of content, 4 bytes of padding}
        let bytes = [1, 4, 0, 1, 0x01, 0x2c, 4, 0];
        let h = RecordHeader::parse(&bytes).unwrap();
        assert_eq!(h.record_type, RecordType::Params);
        assert_eq!(
            (h.request_id, h.content_length, h.padding_length),
            (1, 300, 4)
        );
        assert_eq!(h.record_len(), 8 + 300 + 4);
        assert_eq!(h.to_bytes(), bytes);
        for cut in 0..8 {
            assert_eq!(RecordHeader::parse(&bytes[..cut]), None, "{cut}");
        }
    }

    #[test]
    fn type_role_status_round_trip() {
        for t in 0..=255u8 {
            assert_eq!(RecordType::from(t).as_u8(), t);
            assert_eq!(ProtocolStatus::from(t).as_u8(), t);
        }
        for r in [0u16, 1, 2, 3, 4, 0xffff] {
            assert_eq!(Role::from(r).as_u16(), r);
        }
        assert_eq!(RecordType::from(11).to_string(), "FCGI_UNKNOWN_TYPE");
        assert_eq!(RecordType::from(12).to_string(), "record type 12");
    }
}
