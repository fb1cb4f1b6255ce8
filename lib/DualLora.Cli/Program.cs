using DualLora.Runtime;
using TorchSharp;
var load = TorchRuntime.EnsureLoaded();
Console.WriteLine(load);
var x = torch.ones(2, 3, requires_grad: true);
var y = (x * x).sum();
y.backward();
Console.WriteLine(x.grad!.sum().item<float>());
