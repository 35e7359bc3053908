using System.Globalization;

namespace MtaSts.Actors.IntakeMemoryBench;

internal sealed record Options
{
    public const string Usage = """
        usage: dotnet run -c Release --project load-tests/IntakeMemoryBench -- [options]
          --sessions N         concurrent SMTP sessions (default 20)
          --size-mb N          message size in MiB, headers included (default 48)
          --rounds N           messages per session, one after the other on the same connection (default 1)
          --deliver            deliver to an in-process discarding receiver (default: no delivery; every domain goes
                               to a loopback port nobody listens on, so messages stay queued and only intake is measured)
          --settle S           idle seconds after the listener answers 220, before the baseline (default 5)
          --idle S             idle seconds after the last 250 (after the last delivery with --deliver) (default 10)
          --interval-ms N      RSS sampling interval (default 100)
          --timeout S          bound for all transfers (default 600)
          --drain-timeout S    --deliver: bound for the deliveries after the last 250 (default 180)
          --gateway-dll PATH   gateway to run (default: build src/MtaSts.Actors.Host -c Release and run that)
          --no-build           do not build; run src/MtaSts.Actors.Host/bin/Release/net10.0/mtasts-gateway.dll
          --out DIR            report directory (default load-tests/results/<timestamp>-intake-memory)
          --keep               keep the work directory (config, data dir, mail.log, gateway.out)
        exit: 0 ok; 1 a transfer or delivery failed, or the gateway exited; 2 usage; 3 gateway build/start failed;
              4 no delivery, but the spool on disk holds less than was accepted (segments of queued messages deleted)
        """;

    public int Sessions { get; init; } = 20;
    public double SizeMb { get; init; } = 48;
    public int Rounds { get; init; } = 1;
    public bool Deliver { get; init; }
    public double Settle { get; init; } = 5;
    public double Idle { get; init; } = 10;
    public int IntervalMs { get; init; } = 100;
    public double Timeout { get; init; } = 600;
    public double DrainTimeout { get; init; } = 180;
    public string? GatewayDll { get; init; }
    public bool NoBuild { get; init; }
    public string? OutDir { get; init; }
    public bool Keep { get; init; }

    public long SizeBytes => (long)Math.Round(SizeMb * 1024 * 1024);

    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{name} needs a value");
            double D() => double.TryParse(Next(), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : throw new ArgumentException($"{name}: not a number");
            int I() => int.TryParse(Next(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : throw new ArgumentException($"{name}: not an integer");
            o = name switch
            {
                "--sessions" => o with { Sessions = I() },
                "--size-mb" => o with { SizeMb = D() },
                "--rounds" => o with { Rounds = I() },
                "--deliver" => o with { Deliver = true },
                "--settle" => o with { Settle = D() },
                "--idle" => o with { Idle = D() },
                "--interval-ms" => o with { IntervalMs = I() },
                "--timeout" => o with { Timeout = D() },
                "--drain-timeout" => o with { DrainTimeout = D() },
                "--gateway-dll" => o with { GatewayDll = Path.GetFullPath(Next()) },
                "--no-build" => o with { NoBuild = true },
                "--out" => o with { OutDir = Path.GetFullPath(Next()) },
                "--keep" => o with { Keep = true },
                "-h" or "--help" => throw new ArgumentException(""),
                _ => throw new ArgumentException($"unknown argument '{name}'"),
            };
        }
        if (o.Sessions is < 1 or > 1000) throw new ArgumentException("--sessions: 1..1000");
        if (o.SizeMb is < 1 or > 1024) throw new ArgumentException("--size-mb: 1..1024");
        if (o.Rounds is < 1 or > 1000) throw new ArgumentException("--rounds: 1..1000");
        if (o.IntervalMs is < 10 or > 10_000) throw new ArgumentException("--interval-ms: 10..10000");
        if (o.Settle < 0 || o.Idle < 0 || o.Timeout <= 0 || o.DrainTimeout <= 0) throw new ArgumentException("durations must be positive");
        if (o.GatewayDll is not null && !File.Exists(o.GatewayDll)) throw new ArgumentException($"--gateway-dll: '{o.GatewayDll}' not found");
        return o;
    }
}
