using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Data;

/// <summary>One Fashion-MNIST image placed in a scene: its index in the source split and its label.</summary>
public readonly record struct SceneItem(int ImageIndex, int Label);

/// <summary>
/// A 2x2 grid of Fashion-MNIST items, 56x56 grey (the small model's input size), some cells empty (black).
/// Cells are in reading order: top left, top right, bottom left, bottom right; a null cell is empty.
/// </summary>
public sealed record FashionScene(IReadOnlyList<SceneItem?> Cells)
{
    public const int GridSide = 2;
    public const int CellCount = GridSide * GridSide;
    public const int Size = GridSide * FashionMnist.ImageSize;

    /// <summary>The cells' names in reading order, as instructions say them.</summary>
    public static readonly IReadOnlyList<string> PositionNames = ["top left", "top right", "bottom left", "bottom right"];

    /// <summary>The items present, in reading order (empty cells left out).</summary>
    public IEnumerable<SceneItem> Items => Cells.Where(c => c.HasValue).Select(c => c!.Value);

    /// <summary>The indices of the cells that hold an item.</summary>
    public IEnumerable<int> OccupiedCells => Enumerable.Range(0, CellCount).Where(i => Cells[i].HasValue);

    /// <summary>The scene's pixels: uint8 [56, 56], each item's exact source pixels in its cell, zeros in empty cells.</summary>
    public Tensor Render(FashionMnist source)
    {
        if (Cells.Count != CellCount) throw new ArgumentException($"a scene has {CellCount} cells, this one {Cells.Count}.");
        using var scope = NewDisposeScope();
        var canvas = zeros(Size, Size, ScalarType.Byte);
        const int side = FashionMnist.ImageSize;
        foreach (int cell in OccupiedCells)
        {
            int row = cell / GridSide, column = cell % GridSide;
            canvas[TensorIndex.Slice(row * side, (row + 1) * side), TensorIndex.Slice(column * side, (column + 1) * side)] =
                source.Images[Cells[cell]!.Value.ImageIndex];
        }
        return canvas.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The scene as the small model reads it: float32 [1, 56, 56], pixels / 255, the tensor
    /// <c>ImagePreprocessing.Grey(56)</c> makes of the scene's exported PNG, without the round trip through a file.
    /// </summary>
    public Tensor Image(FashionMnist source)
    {
        using var scope = NewDisposeScope();
        return (Render(source).to_type(ScalarType.Float32) / 255f).unsqueeze(0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Which patches of an encoder's <paramref name="patchGrid"/> x <paramref name="patchGrid"/> grid lie in a cell
    /// that holds an item: bool [patchGrid, patchGrid] (patch row, patch column). The grid must split evenly into the scene's cells.
    /// </summary>
    public Tensor OccupiedPatches(int patchGrid)
    {
        if (patchGrid < GridSide || patchGrid % GridSide != 0)
            throw new ArgumentException($"a {patchGrid} x {patchGrid} patch grid does not split evenly into the scene's {GridSide} x {GridSide} cells.", nameof(patchGrid));
        int perCell = patchGrid / GridSide;
        var occupied = new bool[patchGrid * patchGrid];
        for (int row = 0; row < patchGrid; row++)
            for (int column = 0; column < patchGrid; column++)
                occupied[row * patchGrid + column] = Cells[row / perCell * GridSide + column / perCell].HasValue;
        return tensor(occupied).reshape(patchGrid, patchGrid);
    }
}
