namespace MtaSts.Actors.LoadTests; public static class Program { public static int Main(string[] args) => 0; }
