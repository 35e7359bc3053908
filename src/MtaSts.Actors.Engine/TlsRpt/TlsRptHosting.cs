using System.Security.Cryptography.X509Certificates;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Logging;
using MtaSts.Actors.TlsRpt;

namespace MtaSts.Actors.Engine.TlsRpt;

public static class TlsRptHosting
{
    /// <summary>The TLS-RPT feature (RFC 8460), null when <c>mtasts.tls-rpt.enabled = false</c>: counters in
    /// <c>&lt;data-dir&gt;/tlsrpt.db</c>; reports mailed through the gateway's own queue (<paramref name="mail"/>) or
    /// POSTed over HTTPS through the live policy proxy, trusting the extra CA bundle too. Started by the caller once
    /// <paramref name="mail"/> can dispatch.</summary>
    public static TlsRptService? Create(TlsRptOptions options, string hostname, string dataDir, IDnsResolver dns,
        ITlsRptMailSubmitter mail, Func<Uri?> proxy, string? extraCaBundle, MailLog log, TimeProvider clock, Stack<Func<ValueTask>> undo)
    {
        if (!options.Enabled) return null;
        var poster = new TlsRptHttpPoster(dns, proxy, ExtraRoots(extraCaBundle), options.HttpTimeout);
        var service = new TlsRptService(options, hostname, TlsRptStore.Open(Path.Combine(dataDir, "tlsrpt.db")), dns, mail, poster, log, clock);
        undo.Push(service.DisposeAsync);
        return service;
    }

    private static X509Certificate2[] ExtraRoots(string? pemBundle)
    {
        if (pemBundle is null) return [];
        var roots = new X509Certificate2Collection();
        roots.ImportFromPemFile(pemBundle);
        return [.. roots];
    }
}
