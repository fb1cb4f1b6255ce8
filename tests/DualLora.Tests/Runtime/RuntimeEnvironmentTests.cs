using DualLora.IO;
using DualLora.Runtime;

namespace DualLora.Tests.Runtime;

[Collection(ProcessStateCollection.Name)]
public class RuntimeEnvironmentTests
{
    const string Valid = """
        {
          "backend": "cpu", "device": "auto", "threads": 2, "seed": 7, "profile": "full",
          "data": { "fashion_mnist": "/usr/share/datasets/fashion-mnist", "models": "data/models", "runs": "runs" }
        }
        """;

    static string Write(TempFolder temp, string json)
    {
        string path = temp.File(RuntimeEnvironment.FileName);
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void A_valid_file_is_read_with_paths_resolved_against_its_folder()
    {
        using var temp = new TempFolder();
        var environment = RuntimeEnvironment.Load(Write(temp, Valid));
        Assert.Equal(Backend.Cpu, environment.Backend);
        Assert.Equal("auto", environment.Device);
        Assert.Equal(2, environment.Threads);
        Assert.Equal(7, environment.Seed);
        Assert.Equal(Profile.Full, environment.Profile);
        Assert.Equal("/usr/share/datasets/fashion-mnist", environment.Data.FashionMnist);
        Assert.Equal(Path.Combine(temp.Path, "data", "models"), environment.Data.Models);
        Assert.Equal(Path.Combine(temp.Path, "runs"), environment.Data.Runs);
    }

    [Fact]
    public void The_file_is_found_from_a_folder_below_it()
    {
        using var temp = new TempFolder();
        Write(temp, Valid);
        string below = Directory.CreateDirectory(Path.Combine(temp.Path, "notebooks", "deeper")).FullName;
        Assert.Equal(Path.Combine(temp.Path, RuntimeEnvironment.FileName), RuntimeEnvironment.Find(below).SourceFile);
    }

    [Fact]
    public void The_project_file_is_valid_and_auto_picks_a_device()
    {
        var environment = RuntimeEnvironment.Find(AppContext.BaseDirectory);
        var device = environment.Apply();
        Assert.Equal(TorchSharp.torch.cuda.is_available() ? TorchSharp.DeviceType.CUDA : TorchSharp.DeviceType.CPU, device.type);
    }

    [Theory]
    [InlineData("\"device\": \"auto\"", "\"device\": \"gpu\"", "'device'", "\"auto\", \"cpu\", \"cuda\", \"cuda:N\"")]
    [InlineData("\"device\": \"auto\"", "\"device\": \"cuda:x\"", "'device'", "cuda:N")]
    [InlineData("\"device\": \"auto\"", "\"device\": \"cuda\"", "'device'", "\"cpu\"")]
    [InlineData("\"threads\": 2", "\"threads\": \"2\"", "'threads'", "must be a JSON number, not string")]
    [InlineData("\"threads\": 2", "\"threads\": -1", "'threads'", "whole numbers from 0")]
    [InlineData("\"threads\": 2", "\"threads\": 1.5", "'threads'", "whole numbers")]
    [InlineData("\"profile\": \"full\"", "\"profile\": \"medium\"", "'profile'", "\"smoke\", \"full\"")]
    [InlineData("\"backend\": \"cpu\"", "\"backend\": \"tpu\"", "'backend'", "\"cpu\", \"cuda\"")]
    [InlineData("\"seed\": 7,", "", "'seed'", "missing")]
    [InlineData("\"seed\": 7,", "\"seed\": 7, \"sede\": 8,", "'sede'", "allowed keys: backend, device, threads, seed, profile, data")]
    [InlineData("\"runs\": \"runs\"", "\"runs\": \"runs\", \"cache\": \"x\"", "'data.cache'", "data.fashion_mnist, data.models, data.runs")]
    [InlineData("\"runs\": \"runs\"", "\"runs\": 3", "'data.runs'", "must be a JSON string, not number")]
    [InlineData("\"profile\": \"full\",", "\"profile\": \"full\"", "not valid JSON", "environment.json")]
    public void Bad_values_are_rejected_naming_the_key_and_what_is_allowed(string find, string replace, string expected1, string expected2)
    {
        using var temp = new TempFolder();
        Assert.Contains(find, Valid);
        string path = Write(temp, Valid.Replace(find, replace));
        var error = Assert.Throws<InvalidFileException>(() => RuntimeEnvironment.Load(path));
        Assert.Contains(path, error.Message);
        Assert.Contains(expected1, error.Message);
        Assert.Contains(expected2, error.Message);
    }

    [Fact]
    public void The_cuda_backend_without_CUDA_packages_is_an_error_that_says_what_to_install()
    {
        if (TorchSharp.torch.cuda.is_available()) return;
        using var temp = new TempFolder();
        string path = Write(temp, Valid.Replace("\"backend\": \"cpu\"", "\"backend\": \"cuda\""));
        var error = Assert.Throws<InvalidDataException>(() => RuntimeEnvironment.Load(path).Apply());
        Assert.Contains(path, error.Message);
        Assert.Contains("'backend'", error.Message);
        Assert.Contains("TorchSharp-cuda-linux", error.Message);

        // The command line reports it as bad input instead of dying on it.
        string current = Directory.GetCurrentDirectory();
        var errors = new StringWriter();
        try
        {
            Directory.SetCurrentDirectory(temp.Path);
            Assert.Equal(2, DualLora.Cli.Commands.Run(["env"], TextWriter.Null, errors));
        }
        finally
        {
            Directory.SetCurrentDirectory(current);
        }
        Assert.Contains("TorchSharp-cuda-linux", errors.ToString());
    }

    [Fact]
    public void The_profile_variable_overrides_the_file_and_is_checked()
    {
        using var temp = new TempFolder();
        string path = Write(temp, Valid);
        try
        {
            Environment.SetEnvironmentVariable(RuntimeEnvironment.ProfileVariable, "smoke");
            Assert.Equal(Profile.Smoke, RuntimeEnvironment.Load(path).Profile);
            Environment.SetEnvironmentVariable(RuntimeEnvironment.ProfileVariable, "tiny");
            Assert.Contains(RuntimeEnvironment.ProfileVariable, Assert.Throws<InvalidDataException>(() => RuntimeEnvironment.Load(path)).Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable(RuntimeEnvironment.ProfileVariable, null);
        }
    }
}
