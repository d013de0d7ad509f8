//! Record contents (FastCGI 1.0 sections 4 and 5): [`Payload`] by record type, the fixed-size
//! bodies of the discrete records (`FCGI_BeginRequestBody`, `FCGI_EndRequestBody`,
//! `FCGI_UnknownTypeBody`), and encoding a [`Record`] with its header and padding.

use bytes::{BufMut, Bytes, BytesMut};
use nom::number::streaming::{be_u16, be_u32, be_u8};
use nom::sequence::tuple;
use nom::IResult;

use crate::record::{
    ProtocolStatus, RecordHeader, RecordType, Role, FCGI_KEEP_CONN, FCGI_MAX_CONTENT_LEN,
    FCGI_VERSION_1, FIXED_BODY_LEN,
};

/// `FCGI_BeginRequestBody` (section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeginRequestBody {
    /// The role the web server expects us to play.
    pub role: Role,
    /// `flags`; see [`FCGI_KEEP_CONN`].
    pub flags: u8,
}

impl BeginRequestBody {
    /// `flags & FCGI_KEEP_CONN`: "If zero, the application closes the connection after
    /// responding to this request."
    pub fn keep_conn(&self) -> bool {
        self.flags & FCGI_KEEP_CONN != 0
    }
}

/// `FCGI_EndRequestBody` (section 5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRequestBody {
    /// `appStatus`: for a Responder, "the status code that the CGI program would have returned
    /// via the exit system call".
    pub app_status: u32,
    /// `protocolStatus`.
    pub protocol_status: ProtocolStatus,
}

/// `FCGI_UnknownTypeBody` (section 4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownTypeBody {
    /// The type of the unrecognized management record.
    pub record_type: u8,
}

/// What a record carries, by type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// `FCGI_BEGIN_REQUEST`.
    BeginRequest(BeginRequestBody),
    /// `FCGI_ABORT_REQUEST` (no content).
    AbortRequest,
    /// `FCGI_END_REQUEST`.
    EndRequest(EndRequestBody),
    /// `FCGI_PARAMS` stream content (empty = end of stream).
    Params(Bytes),
    /// `FCGI_STDIN` stream content (empty = end of stream).
    Stdin(Bytes),
    /// `FCGI_STDOUT` stream content (empty = end of stream).
    Stdout(Bytes),
    /// `FCGI_STDERR` stream content (empty = end of stream).
    Stderr(Bytes),
    /// `FCGI_DATA` stream content (empty = end of stream).
    Data(Bytes),
    /// `FCGI_GET_VALUES`: name-value pairs with empty values.
    GetValues(Bytes),
    /// `FCGI_GET_VALUES_RESULT`: name-value pairs.
    GetValuesResult(Bytes),
    /// `FCGI_UNKNOWN_TYPE`.
    UnknownType(UnknownTypeBody),
    /// A record type this version does not define, with its raw content.
    Other {
        /// The wire type.
        record_type: u8,
        /// The content.
        content: Bytes,
    },
}

/// One FastCGI record without its padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `requestId` ([`FCGI_NULL_REQUEST_ID`](crate::record::FCGI_NULL_REQUEST_ID) for management
    /// records).
    pub request_id: u16,
    /// The typed content.
    pub payload: Payload,
}

impl Payload {
    /// The record type carrying this payload.
    pub fn record_type(&self) -> RecordType {
        match self {
            Self::BeginRequest(_) => RecordType::BeginRequest,
            Self::AbortRequest => RecordType::AbortRequest,
            Self::EndRequest(_) => RecordType::EndRequest,
            Self::Params(_) => RecordType::Params,
            Self::Stdin(_) => RecordType::Stdin,
            Self::Stdout(_) => RecordType::Stdout,
            Self::Stderr(_) => RecordType::Stderr,
            Self::Data(_) => RecordType::Data,
            Self::GetValues(_) => RecordType::GetValues,
            Self::GetValuesResult(_) => RecordType::GetValuesResult,
            Self::UnknownType(_) => RecordType::UnknownType,
            Self::Other { record_type, .. } => RecordType::Other(*record_type),
        }
    }

    /// Builds the payload of a record whose header is `record_type` from its content. The content
    /// length of fixed-size types must already have been checked: `None` when it is wrong.
    pub fn from_content(record_type: RecordType, content: Bytes) -> Option<Self> {
        if let Some(len) = record_type.fixed_content_length() {
            if content.len() != usize::from(len) {
                return None;
            }
        }
        Some(match record_type {
            RecordType::BeginRequest => Self::BeginRequest(parse_fixed(&content, begin_body)?),
            RecordType::AbortRequest => Self::AbortRequest,
            RecordType::EndRequest => Self::EndRequest(parse_fixed(&content, end_body)?),
            RecordType::UnknownType => Self::UnknownType(UnknownTypeBody {
                record_type: *content.first()?,
            }),
            RecordType::Params => Self::Params(content),
            RecordType::Stdin => Self::Stdin(content),
            RecordType::Stdout => Self::Stdout(content),
            RecordType::Stderr => Self::Stderr(content),
            RecordType::Data => Self::Data(content),
            RecordType::GetValues => Self::GetValues(content),
            RecordType::GetValuesResult => Self::GetValuesResult(content),
            RecordType::Other(record_type) => Self::Other {
                record_type,
                content,
            },
        })
    }

    /// Appends the content bytes (without header or padding).
    fn put_content(&self, out: &mut BytesMut) {
        match self {
            Self::BeginRequest(b) => {
                out.put_u16(b.role.as_u16());
                out.put_u8(b.flags);
                out.put_bytes(0, 5);
            }
            Self::AbortRequest => {}
            Self::EndRequest(b) => {
                out.put_u32(b.app_status);
                out.put_u8(b.protocol_status.as_u8());
                out.put_bytes(0, 3);
            }
            Self::UnknownType(b) => {
                out.put_u8(b.record_type);
                out.put_bytes(0, 7);
            }
            Self::Params(c)
            | Self::Stdin(c)
            | Self::Stdout(c)
            | Self::Stderr(c)
            | Self::Data(c)
            | Self::GetValues(c)
            | Self::GetValuesResult(c)
            | Self::Other { content: c, .. } => out.put_slice(c),
        }
    }

    /// The content length on the wire.
    pub fn content_len(&self) -> usize {
        match self {
            Self::BeginRequest(_) | Self::EndRequest(_) | Self::UnknownType(_) => {
                usize::from(FIXED_BODY_LEN)
            }
            Self::AbortRequest => 0,
            Self::Params(c)
            | Self::Stdin(c)
            | Self::Stdout(c)
            | Self::Stderr(c)
            | Self::Data(c)
            | Self::GetValues(c)
            | Self::GetValuesResult(c)
            | Self::Other { content: c, .. } => c.len(),
        }
    }
}

impl Record {
    /// A record for `request_id`.
    pub fn new(request_id: u16, payload: Payload) -> Self {
        Self {
            request_id,
            payload,
        }
    }

    /// Appends the record, padded to a multiple of 8 bytes as section 3.3 recommends.
    ///
    /// # Panics
    /// Never; content longer than [`FCGI_MAX_CONTENT_LEN`] is a caller bug reported by
    /// [`crate::codec::RecordCodec`]'s encoder, which checks first.
    pub fn encode(&self, out: &mut BytesMut) {
        let len = self.payload.content_len().min(FCGI_MAX_CONTENT_LEN);
        let padding = padding_for(len);
        let header = RecordHeader {
            version: FCGI_VERSION_1,
            record_type: self.payload.record_type(),
            request_id: self.request_id,
            content_length: len as u16,
            padding_length: padding,
        };
        out.reserve(header.record_len());
        out.put_slice(&header.to_bytes());
        let start = out.len();
        self.payload.put_content(out);
        out.truncate(start + len);
        out.put_bytes(0, usize::from(padding));
    }
}

/// Padding that brings `content_len` to a multiple of 8 bytes.
pub fn padding_for(content_len: usize) -> u8 {
    ((8 - content_len % 8) % 8) as u8
}

/// Appends a header for a record of `record_type` without padding (the output path streams the
/// content separately).
pub fn put_header(out: &mut BytesMut, record_type: RecordType, request_id: u16, len: u16) {
    let header = RecordHeader {
        version: FCGI_VERSION_1,
        record_type,
        request_id,
        content_length: len,
        padding_length: 0,
    };
    out.put_slice(&header.to_bytes());
}

fn parse_fixed<T>(content: &[u8], parser: fn(&[u8]) -> IResult<&[u8], T>) -> Option<T> {
    parser(content).ok().map(|(_, v)| v)
}

fn begin_body(input: &[u8]) -> IResult<&[u8], BeginRequestBody> {
    let (rest, (role, flags)) = tuple((be_u16, be_u8))(input)?;
    let body = BeginRequestBody {
        role: Role::from(role),
        flags,
    };
    Ok((rest, body))
}

fn end_body(input: &[u8]) -> IResult<&[u8], EndRequestBody> {
    let (rest, (app_status, protocol_status)) = tuple((be_u32, be_u8))(input)?;
    let body = EndRequestBody {
        app_status,
        protocol_status: ProtocolStatus::from(protocol_status),
    };
    Ok((rest, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_bodies_from_spec_layout() {
        let begin = Payload::from_content(
            RecordType::BeginRequest,
            Bytes::from_static(&[0, 1, 1, 0, 0, 0, 0, 0]),
        );
        let Some(Payload::BeginRequest(b)) = begin else {
            panic!("{begin:?}")
        };
        assert_eq!(b.role, Role::Responder);
        assert!(b.keep_conn());
        let end = Payload::from_content(
            RecordType::EndRequest,
            Bytes::from_static(&[0, 0, 3, 0xaa, 2, 0, 0, 0]),
        );
        assert_eq!(
            end,
            Some(Payload::EndRequest(EndRequestBody {
                app_status: 938,
                protocol_status: ProtocolStatus::Overloaded
            }))
        );
        assert_eq!(
            Payload::from_content(RecordType::BeginRequest, Bytes::from_static(&[0, 1])),
            None
        );
        assert_eq!(
            Payload::from_content(RecordType::AbortRequest, Bytes::from_static(b"x")),
            None
        );
    }

    #[test]
    fn encode_pads_to_eight() {
        let mut out = BytesMut::new();
        Record::new(1, Payload::Stdout(Bytes::from_static(b"hello"))).encode(&mut out);
        assert_eq!(
            &out[..],
            b"\x01\x06\x00\x01\x00\x05\x03\x00hello\x00\x00\x00"
        );
        out.clear();
        let end = EndRequestBody {
            app_status: 0,
            protocol_status: ProtocolStatus::RequestComplete,
        };
        Record::new(1, Payload::EndRequest(end)).encode(&mut out);
        assert_eq!(
            &out[..],
            b"\x01\x03\x00\x01\x00\x08\x00\x00\0\0\0\0\0\0\0\0"
        );
    }
}
