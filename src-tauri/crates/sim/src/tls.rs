//! A throwaway certificate authority and a `localhost` leaf certificate, made at every start: real clients
//! refuse plain HTTP for bearer tokens, and trusting one generated CA is what a client does for the sim.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

pub struct Certs {
    pub ca_pem: String,
    pub leaf_pem: String,
    pub key_pem: String,
}

pub fn generate() -> Result<Certs, String> {
    let e = |e: rcgen::Error| e.to_string();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca_params.distinguished_name.push(DnType::CommonName, "Ringmaster simulated tenant CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(e)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(e)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut leaf_params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).map_err(e)?;
    leaf_params.distinguished_name.push(DnType::CommonName, "localhost");
    let leaf_key = KeyPair::generate().map_err(e)?;
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(e)?;
    Ok(Certs { ca_pem: ca_cert.pem(), leaf_pem: leaf.pem(), key_pem: leaf_key.serialize_pem() })
}
