// The ML.NET surface of MLNetCompress. Folders: Compress/ (the estimator), Recipes/ glue, Distillation/ (soft labels, students).
