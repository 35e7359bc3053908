// TlsSupport, DaneSupport and IpPreference are defined once, in MtaSts.Actors.Tls (canonical).
global using MtaSts.Actors.Tls;
