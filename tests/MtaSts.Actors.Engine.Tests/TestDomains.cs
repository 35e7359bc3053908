global using static MtaSts.Actors.Engine.Tests.TestDomains;
using MtaSts.Actors.Dns;

namespace MtaSts.Actors.Engine.Tests;

public static class TestDomains
{
    /// <summary>A destination domain for a test (normalised and validated like the gateway's).</summary>
    public static DestinationDomain Dom(string name) => DestinationDomain.Parse(name);
}
