using System.Runtime.CompilerServices;
using MLNetCompress.Runtime;

namespace MLNetCompress.Tests.Runtime;

internal static class OrtTestSetup
{
    // ONNX Runtime's global thread pool can only be created before anything in the process starts ONNX Runtime,
    // and tests run in any order: start it as the assembly loads, as the CLI does at startup.
    [ModuleInitializer]
    internal static void StartGlobalThreadPool() => OrtSessionFactory.EnsureGlobalThreadPool();
}
