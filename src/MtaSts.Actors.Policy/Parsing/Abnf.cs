using System.Globalization;
using System.Text;

namespace MtaSts.Actors.Policy.Parsing;

/// <summary>Character classes of the RFC 8461 ABNF (RFC 5234 core rules), kept ASCII-exact:
/// char.IsLetterOrDigit would accept non-ASCII letters.</summary>
internal static class Abnf
{
    public static bool IsAlpha(char c) => c is >= 'A' and <= 'Z' or >= 'a' and <= 'z';

    public static bool IsDigit(char c) => c is >= '0' and <= '9';

    public static bool IsAlphaDigit(char c) => IsAlpha(c) || IsDigit(c);

    /// <summary>WSP = SP / HTAB.</summary>
    public static bool IsWsp(char c) => c is ' ' or '\t';

    /// <summary>§3.1/§3.2 extension name: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".").</summary>
    public static bool IsExtensionName(string name)
    {
        if (name.Length is 0 or > 32 || !IsAlphaDigit(name[0]))
            return false;
        foreach (var c in name)
            if (!(IsAlphaDigit(c) || c is '_' or '-' or '.'))
                return false;
        return true;
    }

    /// <summary>Describes a character for an error message: printable ASCII quoted, everything else as U+XXXX.</summary>
    public static string Describe(char c) => c is >= '!' and <= '~' ? $"'{c}'" : $"U+{(int)c:X4}";

    // Echo values in errors, but never raw control or invisible format characters (logs, terminals).
    public static string Printable(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var c in s)
        {
            var hidden = c is < ' ' or '\x7F' || char.GetUnicodeCategory(c) is UnicodeCategory.Control or UnicodeCategory.Format
                or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator or UnicodeCategory.Surrogate
                or UnicodeCategory.OtherNotAssigned;
            if (hidden)
                sb.Append($"\\u{(int)c:X4}");
            else
                sb.Append(c);
        }
        return sb.ToString();
    }
}
