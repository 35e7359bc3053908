namespace MtaSts.Actors.Spool.Postgres.Tests;

internal static class Messages
{
    public static readonly DateTimeOffset Received = new(2026, 11, 30, 12, 0, 0, TimeSpan.FromHours(1));

    public static Envelope Envelope(params string[] recipients) =>
        new("sender@origin.test", recipients.Select((a, i) => new Recipient(i, a, DsnNotify.Failure, i == 0 ? "rfc822;" + a : null)).ToArray(),
            Received, Icid: 7, ClientHelo: "client.test", ClientAddress: "192.0.2.1", EnvId: "env-1", Ret: DsnRet.Headers, EightBitMime: true);

    public static byte[] Body(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
