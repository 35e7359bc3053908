using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.Runtime.CompilerServices;

namespace MtaSts.Actors.Host.Cli;

/// <summary>System.CommandLine's help, followed by a command's own closing text (details, exit codes).</summary>
internal static class Help
{
    private static readonly ConditionalWeakTable<Command, string> Epilogues = new();

    public static void Epilogue(Command command, string text) => Epilogues.AddOrUpdate(command, text);

    /// <summary>Wraps the root's (recursive) help option so every command's help ends with its epilogue.</summary>
    public static void Install(RootCommand root)
    {
        var help = root.Options.OfType<HelpOption>().Single();
        if (help.Action is HelpAction inner) help.Action = new WithEpilogue(inner);
    }

    private sealed class WithEpilogue(HelpAction inner) : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            var exit = inner.Invoke(parseResult);
            if (Epilogues.TryGetValue(parseResult.CommandResult.Command, out var text))
            {
                var output = parseResult.InvocationConfiguration.Output;
                output.WriteLine(text.TrimEnd());
                output.WriteLine();
            }
            return exit;
        }
    }
}
