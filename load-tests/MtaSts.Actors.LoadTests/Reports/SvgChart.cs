using System.Globalization;
using System.Net;
using System.Text;

namespace MtaSts.Actors.LoadTests.Reports;

/// <summary>
/// Minimal inline-SVG charts (line and grouped bars). Reports must open offline, on a box with no internet, so no
/// charting library or CDN script: plain SVG elements with axes, ticks and a legend.
/// </summary>
public static class SvgChart
{
    private const int W = 720, H = 260, L = 60, R = 150, T = 28, B = 36;
    public static readonly string[] Palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"];

    public sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points, bool Dashed = false);

    public static string Line(string title, string xLabel, string yLabel, IReadOnlyList<Series> series)
    {
        var pts = series.SelectMany(s => s.Points).ToArray();
        if (pts.Length == 0) return Empty(title);
        double xMax = Math.Max(1, pts.Max(p => p.X)), yMax = Nice(Math.Max(1e-9, pts.Max(p => p.Y)));
        double Sx(double x) => L + x / xMax * (W - L - R);
        double Sy(double y) => H - B - y / yMax * (H - T - B);
        var sb = Begin(title);
        Axes(sb, xLabel, yLabel, xMax, yMax, Sx, Sy);
        for (var i = 0; i < series.Count; i++)
        {
            var s = series[i];
            if (s.Points.Count == 0) continue;
            var color = Palette[i % Palette.Length];
            var d = string.Join(' ', s.Points.Select((p, k) => (k == 0 ? "M" : "L") + F(Sx(p.X)) + "," + F(Sy(p.Y))));
            sb.Append(CultureInfo.InvariantCulture, $"<path d=\"{d}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.6\"{(s.Dashed ? " stroke-dasharray=\"5,3\"" : "")}/>");
            Legend(sb, i, s.Name, color);
        }
        return sb.Append("</svg>").ToString();
    }

    public static string Bars(string title, string yLabel, IReadOnlyList<string> groups, IReadOnlyList<(string Name, double[] Values)> series, int width = W)
    {
        if (groups.Count == 0 || series.Count == 0) return Empty(title);
        var yMax = Nice(Math.Max(1e-9, series.SelectMany(s => s.Values).DefaultIfEmpty(0).Max()));
        double Sy(double y) => H - B - y / yMax * (H - T - B);
        var sb = Begin(title, width);
        Axes(sb, "", yLabel, 0, yMax, null, Sy, width);
        var groupW = (width - L - R) / (double)groups.Count;
        var barW = groupW * 0.8 / series.Count;
        for (var g = 0; g < groups.Count; g++)
        {
            var gx = L + g * groupW + groupW * 0.1;
            for (var i = 0; i < series.Count; i++)
            {
                var v = series[i].Values[g];
                var x = gx + i * barW;
                sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(x)}\" y=\"{F(Sy(v))}\" width=\"{F(barW - 1)}\" height=\"{F(H - B - Sy(v))}\" fill=\"{Palette[i % Palette.Length]}\"><title>{Esc(series[i].Name)} {Esc(groups[g])}: {v:0.###}</title></rect>");
            }
            // Long group labels (many groups in a narrow chart) are shortened; the bar's tooltip has the full name.
            var label = groups[g].Length * 6 > groupW ? groups[g][..Math.Max(3, (int)(groupW / 6) - 1)] + "…" : groups[g];
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(gx + groupW * 0.4)}\" y=\"{H - B + 14}\" text-anchor=\"middle\" font-size=\"10\"><title>{Esc(groups[g])}</title>{Esc(label)}</text>");
        }
        for (var i = 0; i < series.Count; i++) Legend(sb, i, series[i].Name, Palette[i % Palette.Length], width);
        return sb.Append("</svg>").ToString();
    }

    private static StringBuilder Begin(string title, int w = W) => new StringBuilder()
        .Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {H}\" width=\"{w}\" height=\"{H}\" font-family=\"sans-serif\">")
        .Append(CultureInfo.InvariantCulture, $"<text x=\"{L}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{Esc(title)}</text>");

    private static void Axes(StringBuilder sb, string xLabel, string yLabel, double xMax, double yMax, Func<double, double>? sx, Func<double, double> sy, int w = W)
    {
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{L}\" y1=\"{H - B}\" x2=\"{w - R}\" y2=\"{H - B}\" stroke=\"#444\"/><line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{H - B}\" stroke=\"#444\"/>");
        for (var k = 0; k <= 4; k++)
        {
            var v = yMax * k / 4;
            var y = sy(v);
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{L}\" y1=\"{F(y)}\" x2=\"{w - R}\" y2=\"{F(y)}\" stroke=\"#ddd\"/><text x=\"{L - 4}\" y=\"{F(y + 4)}\" text-anchor=\"end\" font-size=\"10\">{Short(v)}</text>");
            if (sx is not null)
            {
                var xv = xMax * k / 4;
                sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(sx(xv))}\" y=\"{H - B + 14}\" text-anchor=\"middle\" font-size=\"10\">{Short(xv)}</text>");
            }
        }
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{(L + w - R) / 2}\" y=\"{H - 4}\" text-anchor=\"middle\" font-size=\"11\">{Esc(xLabel)}</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"12\" y=\"{(T + H - B) / 2}\" text-anchor=\"middle\" font-size=\"11\" transform=\"rotate(-90 12 {(T + H - B) / 2})\">{Esc(yLabel)}</text>");
    }

    private static void Legend(StringBuilder sb, int i, string name, string color, int w = W) =>
        sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{w - R + 10}\" y=\"{T + i * 16}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{w - R + 24}\" y=\"{T + i * 16 + 9}\" font-size=\"10\">{Esc(name)}</text>");

    private static string Empty(string title) => $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"40\"><text x=\"10\" y=\"24\" font-size=\"12\">{Esc(title)}: no data</text></svg>";

    private static double Nice(double v)
    {
        var mag = Math.Pow(10, Math.Floor(Math.Log10(v)));
        foreach (var m in new[] { 1, 2, 2.5, 5, 10 }) if (m * mag >= v) return m * mag;
        return 10 * mag;
    }

    private static string Short(double v) => v >= 1e6 ? (v / 1e6).ToString("0.#", CultureInfo.InvariantCulture) + "M"
        : v >= 1e4 ? (v / 1e3).ToString("0.#", CultureInfo.InvariantCulture) + "k"
        : v.ToString(v < 10 ? "0.##" : "0", CultureInfo.InvariantCulture);

    private static string F(double v) => v.ToString("0.#", CultureInfo.InvariantCulture);
    internal static string Esc(string s) => WebUtility.HtmlEncode(s);
}
