namespace DualLora.Data;

/// <summary>The two splits of Fashion-MNIST: 60,000 training images (<c>train-*</c>) and 10,000 test images (<c>t10k-*</c>).</summary>
public enum FashionMnistSplit { Train, Test }
