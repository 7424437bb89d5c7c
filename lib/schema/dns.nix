# cluster.dns: authoritative zones served by uc-dns.
{
  lib,
  config,
  ucTypes,
  ...
}: let
  inherit (lib) mkOption types;
  nodes = config.cluster.nodes;
  withRole = role: builtins.attrNames (lib.filterAttrs (_: n: builtins.elem role n.roles) nodes);

  recordModule = {
    options = {
      name = mkOption {
        type = types.str;
        example = "www";
        description = "Owner name relative to the zone; `@` is the apex.";
      };
      type = mkOption {
        type = types.enum ["A" "AAAA" "CNAME" "TXT" "MX" "SRV" "NS" "CAA" "PTR"];
        default = "A";
        description = "Record type. With `service`, only A and AAAA make sense.";
      };
      ttl = mkOption {
        type = types.nullOr types.ints.unsigned;
        default = null;
        description = "TTL in seconds; default: the zone's `ttl`.";
      };
      values = mkOption {
        type = types.listOf types.str;
        default = [];
        example = ["10.0.0.5"];
        description = "Record data in zone-file presentation format, one per record.";
      };
      service = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "web";
        description = "Answer with the addresses of the nodes running healthy instances of this service, instead of `values`.";
      };
    };
  };

  ptrPatternModule = {
    options = {
      network = mkOption {
        type = ucTypes.cidr;
        example = "10.0.0.0/24";
        description = "Addresses the pattern answers for: an IPv4 network in a zone under `in-addr.arpa`, an IPv6 network in a zone under `ip6.arpa`, inside the addresses the zone's name covers.";
      };
      pattern = mkOption {
        type = types.str;
        example = "host-{a}-{b}-{c}-{d}.example.com.";
        description = "PTR target, an absolute name with or without the final dot. IPv4: `{a}`…`{d}` are the octets of the queried address. IPv6: `{ip}` is the address as Knot's mod-synthrecord writes it, shortened with `-` for `:` (`2001-db8--1`), and `{hex}` its 32 hex digits (`20010db8000000000000000000000001`).";
      };
    };
  };

  secondaryModule = {
    options = {
      address = mkOption {
        type = types.str;
        example = "192.0.2.53";
        description = "IPv4 or IPv6 address of the secondary: NOTIFY goes to it, and zone transfers (AXFR, IXFR) are allowed from it (the source address of the TCP connection).";
      };
      port = mkOption {
        type = types.port;
        default = 53;
        description = "Port the secondary takes NOTIFY on (UDP).";
      };
    };
  };

  dnssecModule = {
    options = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = "Sign the zone's answers online (ECDSA P-256, algorithm 13; NSEC \"white lies\" for denial) for queries with the DO bit. Give the DS that uc-dns logs and serves at `/dnssec/<zone>/ds` to the parent zone.";
      };
      keyFile = mkOption {
        type = types.nullOr ucTypes.secretPath;
        default = null;
        example = "/run/keys/example.com.pem";
        description = "Path on the DNS nodes of the zone's private key: a PKCS#8 ECDSA P-256 key, PEM or DER (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out <file>`), used as the zone's one Combined Signing Key. A string outside the Nix store, provisioned out of band (agenix, sops-nix, by hand); uc-dns serves the zone unsigned and reports `degraded` while it cannot read it.";
      };
    };
  };

  zoneModule = {name, ...}: {
    options = {
      name = mkOption {
        type = types.str;
        default = name;
        readOnly = true;
        description = "The zone's apex (its attribute name), without trailing dot.";
      };
      ttl = mkOption {
        type = types.ints.unsigned;
        default = 300;
        description = "Default TTL of the zone's records.";
      };
      soa = {
        email = mkOption {
          type = types.str;
          default = "hostmaster.${name}";
          description = "SOA RNAME, the zone contact, as a domain name (`hostmaster.example.com`).";
        };
        refresh = mkOption {
          type = types.ints.positive;
          default = 3600;
          description = "SOA refresh in seconds.";
        };
        retry = mkOption {
          type = types.ints.positive;
          default = 600;
          description = "SOA retry in seconds.";
        };
        expire = mkOption {
          type = types.ints.positive;
          default = 604800;
          description = "SOA expire in seconds.";
        };
        minimum = mkOption {
          type = types.ints.unsigned;
          default = 60;
          description = "SOA minimum (negative caching TTL) in seconds.";
        };
      };
      nameservers = mkOption {
        type = types.listOf types.str;
        default = [];
        example = ["ns1.example.com."];
        description = "NS records at the apex; default: none beyond what `records` lists.";
      };
      records = mkOption {
        type = types.listOf (types.submodule recordModule);
        default = [];
        description = "Records of the zone.";
      };
      ptrPatterns = mkOption {
        type = types.listOf (types.submodule ptrPatternModule);
        default = [];
        description = "For reverse zones (under `in-addr.arpa` or `ip6.arpa`): PTR answers generated from the queried address, as Knot's mod-synthrecord; a PTR declared in `records` for the same name takes precedence.";
      };
      secondaries = mkOption {
        type = types.listOf (types.submodule secondaryModule);
        default = [];
        example = [{address = "192.0.2.53";}];
        description = "Secondary servers of the zone (Knot, BIND, ...): uc-dns sends them NOTIFY when the zone's serial goes up and answers their AXFR and IXFR; transfers from any other address are refused.";
      };
      dnssec = mkOption {
        type = types.submodule dnssecModule;
        default = {};
        example = {
          enable = true;
          keyFile = "/run/keys/example.com.pem";
        };
        description = "Online DNSSEC signing of the zone by uc-dns (docs/dns.md, DNSSEC).";
      };
    };
  };
in {
  options.cluster.dns = {
    servers = mkOption {
      type = types.listOf types.str;
      default = let
        edge = withRole "edge";
      in
        if edge != []
        then edge
        else withRole "control-plane";
      defaultText = lib.literalMD "the `edge` nodes, or the `control-plane` nodes when there are none";
      description = "Nodes running uc-dns.";
    };
    port = mkOption {
      type = types.port;
      default = 53;
      description = "Port uc-dns answers on (UDP and TCP).";
    };
    httpPort = mkOption {
      type = types.port;
      default = 9153;
      description = "Port of uc-dns' /metrics and /health endpoint.";
    };
    zones = mkOption {
      type = types.attrsOf (types.submodule zoneModule);
      default = {};
      description = "Authoritative zones, by apex.";
    };
  };
}
