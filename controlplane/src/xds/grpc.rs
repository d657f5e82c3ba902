//! The ADS gRPC service at the HTTP/2 level, without tonic's generated server.
//!
//! This module owns the gRPC plumbing of `StreamAggregatedResources`: requests are decoded
//! with tonic's [`Streaming`], but responses are framed here, each into one buffer that is
//! freed as soon as it is written. tonic's generated server encodes every response of a
//! stream into one growing buffer that the stream keeps for its whole life, sized by its
//! largest response (a route configuration of a thousand services is half a megabyte):
//! with a thousand proxies that alone was most of meshd's memory. Framing here also writes
//! each resource's bytes once, straight from the translation's shared encoding, where the
//! generated server needed a copy into a `DiscoveryResponse` and another into its buffer.
//!
//! `DeltaAggregatedResources` (and anything else) answers `Unimplemented`, as before.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes};
use envoy_types::pb::envoy::config::core::v3::ControlPlane;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use hyper::body::Frame;
use hyper::{HeaderMap, Request, Response, StatusCode};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use tokio::sync::mpsc;
use tonic::Status;
use tonic::codec::{DecodeBuf, Decoder, Streaming};
use tonic::server::NamedService;
use tonic::transport::server::TcpConnectInfo;

use super::{Shared, connection};

/// The gRPC method meshd serves.
const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
/// The largest request meshd decodes.
const MAX_REQUEST: usize = 16 * 1024 * 1024;

/// What a connection sends: framed responses, or the status that ends the stream.
pub type Tx = mpsc::Sender<Result<Bytes, Status>>;

/// The ADS service, as tonic's server mounts it.
#[derive(Clone)]
pub struct AdsServer {
    shared: Arc<Shared>,
}

impl AdsServer {
    pub fn new(shared: Arc<Shared>) -> Self {
        AdsServer { shared }
    }
}

impl NamedService for AdsServer {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
}

impl tonic::codegen::Service<Request<tonic::body::Body>> for AdsServer {
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        if req.uri().path() != SOTW_PATH {
            let status = Status::unimplemented(
                "meshd serves state-of-the-world xDS only; delta xDS is not built yet",
            );
            return std::future::ready(Ok(status.into_http()));
        }
        let peer = req
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr);
        let inbound =
            Streaming::new_request(RequestDecoder, req.into_body(), None, Some(MAX_REQUEST));
        let (tx, rx) = mpsc::channel(8);
        let shared = self.shared.clone();
        let id = shared.connection_id();
        tokio::spawn(connection::run(shared, id, peer, inbound, tx));
        let mut response = Response::new(tonic::body::Body::new(ResponseBody { rx, done: false }));
        *response.status_mut() = StatusCode::OK;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/grpc"),
        );
        std::future::ready(Ok(response))
    }
}

/// Decodes `DiscoveryRequest`s.
struct RequestDecoder;

impl Decoder for RequestDecoder {
    type Item = DiscoveryRequest;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DiscoveryRequest>, Status> {
        DiscoveryRequest::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("cannot decode the request: {e}")))
    }
}

/// The response stream: framed messages from the connection, then the gRPC status as
/// trailers.
struct ResponseBody {
    rx: mpsc::Receiver<Result<Bytes, Status>>,
    done: bool,
}

impl hyper::body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let status = match self.rx.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(bytes))) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Poll::Ready(Some(Err(status))) => status,
            Poll::Ready(None) => Status::ok(""),
        };
        self.done = true;
        let mut trailers = HeaderMap::new();
        if status.add_header(&mut trailers).is_err() {
            trailers.insert("grpc-status", hyper::header::HeaderValue::from_static("13"));
        }
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// One encoded resource to send: its bytes as the translation encoded them.
pub struct Item<'a> {
    pub value: &'a Bytes,
}

/// Resources at least this large are sent from the translation's own buffer rather than
/// copied into the response (a route configuration of a thousand services, shared by
/// every proxy of its key); smaller ones are copied, so that a response is a few chunks,
/// not one per resource.
const ZERO_COPY_MIN: usize = 16 * 1024;

/// Frames a `DiscoveryResponse` for gRPC (a 5-byte prefix, then the message), writing each
/// resource as an `Any` around its encoded bytes. The frame is returned in chunks, to be
/// sent in order: large resources are chunks of their own, shared with the translation.
pub fn frame_response(
    version: &str,
    type_url: &str,
    nonce: &str,
    control_plane: &str,
    resources: &[Item<'_>],
) -> Vec<Bytes> {
    // Fields 1 (version_info), 4 (type_url), 5 (nonce) and 6 (control_plane) through prost;
    // field 2 (resources) appended, which protobuf reads the same as in field order.
    let head = DiscoveryResponse {
        version_info: version.to_owned(),
        type_url: type_url.to_owned(),
        nonce: nonce.to_owned(),
        control_plane: Some(ControlPlane {
            identifier: control_plane.to_owned(),
        }),
        ..DiscoveryResponse::default()
    };
    let any_len = |value: &[u8]| -> usize {
        1 + encoded_len_varint(type_url.len() as u64)
            + type_url.len()
            + 1
            + encoded_len_varint(value.len() as u64)
            + value.len()
    };
    let body_len: usize = head.encoded_len()
        + resources
            .iter()
            .map(|r| {
                let n = any_len(r.value);
                1 + encoded_len_varint(n as u64) + n
            })
            .sum::<usize>();
    let copied: usize = resources
        .iter()
        .map(|r| r.value.len())
        .filter(|n| *n < ZERO_COPY_MIN)
        .sum();
    let shared: usize = resources.len()
        - resources
            .iter()
            .filter(|r| r.value.len() < ZERO_COPY_MIN)
            .count();
    let mut chunks = Vec::with_capacity(1 + 2 * shared);
    let mut buf = Vec::with_capacity(5 + body_len.min(copied + 256 * resources.len() + 256));
    buf.put_u8(0);
    buf.put_u32(u32::try_from(body_len).unwrap_or(u32::MAX));
    head.encode_raw(&mut buf);
    for r in resources {
        encode_key(2, WireType::LengthDelimited, &mut buf);
        encode_varint(any_len(r.value) as u64, &mut buf);
        encode_key(1, WireType::LengthDelimited, &mut buf);
        encode_varint(type_url.len() as u64, &mut buf);
        buf.put_slice(type_url.as_bytes());
        encode_key(2, WireType::LengthDelimited, &mut buf);
        encode_varint(r.value.len() as u64, &mut buf);
        if r.value.len() < ZERO_COPY_MIN {
            buf.put_slice(r.value);
        } else {
            chunks.push(Bytes::from(std::mem::take(&mut buf)));
            chunks.push(r.value.clone());
        }
    }
    if !buf.is_empty() {
        chunks.push(Bytes::from(buf));
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::Any;

    fn join(chunks: Vec<Bytes>) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    #[test]
    fn framed_responses_decode_as_discovery_responses() {
        let big = Bytes::from(vec![9u8; ZERO_COPY_MIN + 1]);
        let values: Vec<Bytes> = vec![
            Bytes::new(),
            Bytes::from_static(b"abc"),
            big.clone(),
            Bytes::from(vec![7u8; 300]),
            big.clone(),
        ];
        let items: Vec<Item<'_>> = values.iter().map(|v| Item { value: v }).collect();
        let chunks = frame_response("7", "type.googleapis.com/x.Y", "42", "meshd", &items);
        // The large resources are sent from their own buffers.
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks[3].as_ptr(), big.as_ptr());
        assert_eq!(chunks[1].as_ptr(), big.as_ptr());
        let framed = join(chunks);
        assert_eq!(framed[0], 0);
        let len = u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as usize;
        assert_eq!(len, framed.len() - 5);
        let r = DiscoveryResponse::decode(&framed[5..]).unwrap();
        assert_eq!(r.version_info, "7");
        assert_eq!(r.nonce, "42");
        assert_eq!(r.type_url, "type.googleapis.com/x.Y");
        assert_eq!(
            r.control_plane.map(|c| c.identifier).as_deref(),
            Some("meshd")
        );
        let want: Vec<Any> = values
            .iter()
            .map(|v| Any {
                type_url: "type.googleapis.com/x.Y".into(),
                value: v.to_vec(),
            })
            .collect();
        assert_eq!(r.resources, want);
        // An empty response too.
        let framed = join(frame_response("1", "t", "n", "m", &[]));
        let r = DiscoveryResponse::decode(&framed[5..]).unwrap();
        assert!(r.resources.is_empty());
        assert_eq!(r.nonce, "n");
    }
}
