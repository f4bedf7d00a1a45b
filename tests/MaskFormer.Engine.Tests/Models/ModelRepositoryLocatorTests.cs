using MaskFormer.Engine.Models;

namespace MaskFormer.Engine.Tests.Models;

public sealed class ModelRepositoryLocatorTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("maskformer-locate-").FullName;

    [Fact]
    public void Locate_UnsetFromTheTestBinaries_FindsTheCommittedModels()
    {
        var found = ModelRepositoryLocator.Locate(string.Empty, AppContext.BaseDirectory, _scratch);

        Assert.Equal(RepositoryPaths.Models, found);
    }

    [Fact]
    public void Locate_UnsetWithModelsBesideTheServer_PrefersThem()
    {
        var application = Directory.CreateDirectory(Path.Combine(_scratch, "src", "Server", "bin", "Release", "net10.0")).FullName;
        File.WriteAllText(Path.Combine(_scratch, ModelRepositoryLocator.CheckoutMarker), string.Empty);
        Directory.CreateDirectory(Path.Combine(_scratch, "models"));
        var beside = Directory.CreateDirectory(Path.Combine(application, "models")).FullName;

        Assert.Equal(beside, ModelRepositoryLocator.Locate(null, application, "/"));
    }

    [Fact]
    public void Locate_UnsetInsideACheckout_FindsTheCheckoutsModelsWhateverTheWorkingDirectory()
    {
        var application = Directory.CreateDirectory(Path.Combine(_scratch, "src", "Server", "bin", "Release", "net10.0")).FullName;
        File.WriteAllText(Path.Combine(_scratch, ModelRepositoryLocator.CheckoutMarker), string.Empty);
        var models = Directory.CreateDirectory(Path.Combine(_scratch, "models")).FullName;

        Assert.Equal(models, ModelRepositoryLocator.Locate(string.Empty, application, Path.Combine(_scratch, "src", "Server")));
    }

    [Fact]
    public void Locate_UnsetAndNowhere_NamesEveryPlaceLookedAndTheSetting()
    {
        var application = Directory.CreateDirectory(Path.Combine(_scratch, "src", "Server", "bin")).FullName;
        File.WriteAllText(Path.Combine(_scratch, ModelRepositoryLocator.CheckoutMarker), string.Empty);

        var error = Assert.Throws<ModelLoadException>(() => ModelRepositoryLocator.Locate(string.Empty, application, _scratch));

        Assert.Contains($"'{Path.Combine(application, "models")}'", error.Message, StringComparison.Ordinal);
        Assert.Contains($"'{Path.Combine(_scratch, "models")}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("MaskFormer:Models:Path", error.Message, StringComparison.Ordinal);
        Assert.Equal("MaskFormer:Models:Path", error.Setting);
    }

    [Fact]
    public void Locate_RelativePath_ResolvedAgainstTheWorkingDirectoryNotTheServer()
    {
        var mine = Directory.CreateDirectory(Path.Combine(_scratch, "work", "my-models")).FullName;

        var found = ModelRepositoryLocator.Locate("my-models", AppContext.BaseDirectory, Path.Combine(_scratch, "work"));

        Assert.Equal(mine, found);
    }

    [Fact]
    public void Locate_ConfiguredPathMissing_NamesTheFullPathAndTheWorkingDirectory()
    {
        var error = Assert.Throws<ModelLoadException>(() => ModelRepositoryLocator.Locate("missing", AppContext.BaseDirectory, _scratch));

        Assert.Equal(Path.Combine(_scratch, "missing"), error.FilePath);
        Assert.Contains($"'{Path.Combine(_scratch, "missing")}'", error.Message, StringComparison.Ordinal);
        Assert.Contains($"working directory '{_scratch}'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Locate_AbsolutePath_UsedAsIs()
    {
        Assert.Equal(RepositoryPaths.Models, ModelRepositoryLocator.Locate(RepositoryPaths.Models, _scratch, _scratch));
    }

    public void Dispose() => Directory.Delete(_scratch, recursive: true);
}
