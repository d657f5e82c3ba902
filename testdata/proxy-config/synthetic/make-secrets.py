#!/usr/bin/env python3
"""Writes secrets.json: a config dump whose SecretsConfigDump holds a CA valid 2020-2120, an
expired workload certificate (2021-01-01 to 2021-01-02), and a warming secret, plus an
unknown section and entries with missing fields. Needs python3-cryptography. Run from
this directory; the golden outputs depend on the serial numbers fixed below."""
import base64, datetime, json
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

def cert(cn, serial, start, end, issuer_key=None, issuer_name=None):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(issuer_name or name).public_key(key.public_key())
         .serial_number(serial).not_valid_before(start).not_valid_after(end))
    c = b.sign(issuer_key or key, hashes.SHA256())
    return key, name, c.public_bytes(serialization.Encoding.PEM)

utc = datetime.timezone.utc
ca_key, ca_name, ca_pem = cert("meshctl test root", 0x00193a543fe2b0d9cd4847675394dfc54,
                               datetime.datetime(2020, 1, 1, tzinfo=utc),
                               datetime.datetime(2120, 1, 1, tzinfo=utc))
_, _, leaf_pem = cert("spiffe://cluster.local/ns/shop/sa/client", 0x6fbee254c22900615cb1f74e3d2f1713,
                      datetime.datetime(2021, 1, 1, 12, 30, 5, tzinfo=utc),
                      datetime.datetime(2021, 1, 2, 12, 30, 5, tzinfo=utc), ca_key, ca_name)
b64 = lambda pem: base64.b64encode(pem).decode()
dump = {"configs": [
    {"@type": "type.googleapis.com/acme.admin.v9.FancyConfigDump", "anything": [1, 2, 3]},
    {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
     "dynamic_active_clusters": [
         {"cluster": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                      "name": "outbound|9080|v1|reviews.shop.svc.cluster.local", "type": "EDS",
                      "metadata": {"filter_metadata": {"istio": {"config":
                          "/apis/networking.istio.io/v1/namespaces/shop/destination-rule/reviews"}}}}},
         {"cluster": {"name": "inbound|9080||"}},
         {"version_info": "no cluster here"},
         {"cluster": "not an object"}]},
    {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
     "dynamic_listeners": [
         {"name": "warming-only", "warming_state": {"listener": {"name": "warming-only"}}},
         {"name": "virtualInbound", "active_state": {"listener": {
             "name": "virtualInbound",
             "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15006}},
             "additional_addresses": [{"address": {"socket_address": {"address": "::", "port_value": 15006}}}],
             "filter_chains": [
                 {"filter_chain_match": {"destination_port": 9080, "transport_protocol": "tls",
                                         "application_protocols": ["istio-peer-exchange", "istio"]},
                  "filters": [{"name": "envoy.filters.network.tcp_proxy",
                               "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                                                "cluster": "inbound|9080||"}}]},
                 {"filter_chain_match": {"server_names": ["a.example.com"], "transport_protocol": "tls"},
                  "filters": [{"name": "acme.filters.network.mystery",
                               "typed_config": {"@type": "type.googleapis.com/acme.Mystery"}}]}],
             "default_filter_chain": {"filters": [{"name": "envoy.filters.network.tcp_proxy",
                                                   "typed_config": {"cluster": "BlackHoleCluster"}}]}}}}]},
    {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
     "dynamic_route_configs": [
         {"route_config": {"name": "9080", "virtual_hosts": [
             {"name": "reviews.shop.svc.cluster.local:9080",
              "domains": ["reviews.shop.svc.cluster.local", "reviews", "reviews.shop", "10.0.0.7"],
              "routes": [
                  {"match": {"prefix": "/api"},
                   "metadata": {"filter_metadata": {"istio": {"config":
                       "/apis/networking.istio.io/v1alpha3/namespaces/shop/virtual-service/reviews"}}},
                   "route": {"cluster": "outbound|9080|v1|reviews.shop.svc.cluster.local"}},
                  {"match": {"safe_regex": {"regex": "/v[0-9]+/.*"}}, "route": {"cluster": "x"}},
                  {"match": {"prefix": "/"}, "route": {"cluster": "PassthroughCluster"}}]},
             {"name": "empty", "domains": ["empty.example.com"]}]}},
         {"route_config": {"name": "http.8080"}}]},
    {"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
     "dynamic_active_secrets": [
         {"name": "default", "version_info": "1",
          "secret": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                     "name": "default",
                     "tls_certificate": {"certificate_chain": {"inline_bytes": b64(leaf_pem)},
                                         "private_key": {"inline_bytes": "W3JlZGFjdGVkXQ=="}}}},
         {"name": "ROOTCA",
          "secret": {"name": "ROOTCA",
                     "validation_context": {"trusted_ca": {"inline_string": ca_pem.decode()}}}}],
     "dynamic_warming_secrets": [{"name": "file-cert:/etc/certs/cert-chain.pem"}]},
]}
with open("synthetic.json", "w") as f:
    json.dump(dump, f, indent=1)
    f.write("\n")
