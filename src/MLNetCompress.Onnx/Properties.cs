using System.Runtime.CompilerServices;

// The generated ONNX protobuf types are internal (the public surface is ModelGraph, TensorData and
// OnnxModelIO); the engine, front ends and tests of this solution see them.
[assembly: InternalsVisibleTo("MLNetCompress")]
[assembly: InternalsVisibleTo("MLNetCompress.ML")]
[assembly: InternalsVisibleTo("mlnet-compress")]
[assembly: InternalsVisibleTo("MLNetCompress.Benchmarks")]
[assembly: InternalsVisibleTo("MLNetCompress.Onnx.Tests")]
[assembly: InternalsVisibleTo("MLNetCompress.Tests")]
[assembly: InternalsVisibleTo("MLNetCompress.ML.Tests")]
[assembly: InternalsVisibleTo("MLNetCompress.Cli.Tests")]
