using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("MLNetCompress.ML")]
[assembly: InternalsVisibleTo("mlnet-compress")]
[assembly: InternalsVisibleTo("MLNetCompress.Benchmarks")]
[assembly: InternalsVisibleTo("MLNetCompress.Tests")]
[assembly: InternalsVisibleTo("MLNetCompress.ML.Tests")]
[assembly: InternalsVisibleTo("MLNetCompress.Cli.Tests")]
