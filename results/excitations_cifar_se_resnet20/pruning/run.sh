cd /work/main
for a in 0.25 0.5; do
  nice -n 10 .venv/bin/python -m senet prune results/cifar10_resnet20_vs_se/cifar_se_resnet20/model.safetensors --dataset imagefolder --data-dir ../shared/data/cifar10-jpeg.tar.gz     --amount $a --rankings excitation,l1,random --rank-per-class 100 --finetune-epochs 1 --finetune-subset 5000     --batch-size 128 --threads 2 --out /tmp/prune_final/amount$a > /tmp/prune_final_$a.log 2>&1
done
